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
    let mut topics = TopicBook::default();
    let _ = topics.handle_request(data);
    let _ = topics.handle_publication("t", data);
});
