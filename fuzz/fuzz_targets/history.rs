//! The group history decoders (request, response): never panic; what
//! decodes re-encodes to the same bytes; the relay's topic rules answer
//! any request without panicking.
#![no_main]

use hush_protocol::relay::TopicBook;
use hush_protocol::{HistoryRequest, HistoryResponse, Wire};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = HistoryRequest::from_bytes(data) {
        assert_eq!(request.to_bytes(), data);
    }
    if let Ok(response) = HistoryResponse::from_bytes(data) {
        assert_eq!(response.to_bytes(), data);
    }
    let mut topics = TopicBook::new(std::iter::empty(), 2);
    let origin = Some(std::net::IpAddr::from([192, 0, 2, 1]));
    let _ = topics.handle_request(1, origin, data);
    let _ = topics.handle_request(2, None, data);
    let topic = std::str::from_utf8(data).unwrap_or("t");
    let _ = topics.handle_publication(3, topic, data);
    let _ = topics.expire(4, 1);
});
