//! The client half of the local API, used by the CLI (and usable by bots).

use std::path::PathBuf;

use serde_json::Value;
use thiserror::Error;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use crate::api::read_line;
use crate::home::Home;
use crate::rpc::{Request, Response, RpcError};

/// Longest response line the client reads (a full page of long messages fits).
const MAX_RESPONSE_LEN: usize = 64 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error(
        "the hush node for {home} is not running: start it with `hush --home {home} node run` (and leave it running)"
    )]
    NotRunning { home: PathBuf },
    #[error("{}", .0.message)]
    Rpc(RpcError),
    #[error("lost the connection to the node: {0}")]
    Io(#[from] std::io::Error),
    #[error("the node sent something unexpected: {0}")]
    Protocol(String),
}

#[derive(Debug)]
pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_id: u64,
}

impl Client {
    pub async fn connect(home: &Home) -> Result<Self, ClientError> {
        let not_running = || ClientError::NotRunning {
            home: home.dir().to_owned(),
        };
        let stream = UnixStream::connect(home.socket_path())
            .await
            .map_err(|_| not_running())?;
        let (read, writer) = stream.into_split();
        Ok(Self {
            reader: BufReader::new(read),
            writer,
            next_id: 1,
        })
    }

    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::to_vec(&Request::new(id, method, params))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        line.push(b'\n');
        self.writer.write_all(&line).await?;
        let response: Response = self.read().await?.ok_or_else(|| {
            ClientError::Protocol("the node closed the connection without answering".into())
        })?;
        match (response.result, response.error) {
            (_, Some(error)) => Err(ClientError::Rpc(error)),
            (Some(result), None) => Ok(result),
            (None, None) => Err(ClientError::Protocol("a response with no result".into())),
        }
    }

    async fn read<T: serde::de::DeserializeOwned>(&mut self) -> Result<Option<T>, ClientError> {
        let Some(line) = read_line(&mut self.reader, MAX_RESPONSE_LEN).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&line)
            .map(Some)
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Subscribes this connection to events; then use [`Client::next_event`].
    pub async fn subscribe(&mut self) -> Result<(), ClientError> {
        self.call("events.subscribe", Value::Null).await.map(drop)
    }

    /// Subscribes from after the event whose `cursor` this is: the events
    /// since then come first (after a `gap` event if some may be lost).
    pub async fn subscribe_after(&mut self, cursor: &str) -> Result<(), ClientError> {
        self.call("events.subscribe", serde_json::json!({ "after": cursor }))
            .await
            .map(drop)
    }

    /// The next event (the `params` of an `event` notification), or `None`
    /// when the node closed the stream.
    pub async fn next_event(&mut self) -> Result<Option<Value>, ClientError> {
        let note: Option<Value> = self.read().await?;
        Ok(note.map(|mut n| n["params"].take()))
    }
}
