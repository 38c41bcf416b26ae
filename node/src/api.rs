//! The server half of the local API (see [`crate::rpc`] for the methods).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, broadcast, mpsc};
use tokio::task::JoinHandle;

use crate::error::NodeError;
use crate::node::{MAX_HISTORY_LIMIT, Node};
use crate::records::Status;
use crate::rpc::{
    ContactAddParams, ContactParams, FileParams, GroupCreateParams, GroupHistoryParams,
    GroupInviteParams, GroupMemberParams, GroupParams, GroupSendParams, GroupSwitchParams,
    GroupTimerParams, HistoryParams, INVALID_PARAMS, INVALID_REQUEST, MAX_REQUEST_LEN,
    METHOD_NOT_FOUND, PARSE_ERROR, PresenceParams, PushParams, RemoveParams, Request, Response,
    SendParams, SharePresenceParams, SwitchParams, TimerParams,
};

/// API connections served at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 64;
/// How long `send` waits by default when asked to wait.
const DEFAULT_WAIT: Duration = Duration::from_secs(30);
const MAX_WAIT: Duration = Duration::from_secs(3600);
const DEFAULT_HISTORY_LIMIT: usize = 50;

/// A running API server; dropping it stops accepting and removes the socket.
#[derive(Debug)]
pub struct ApiServer {
    path: PathBuf,
    task: JoinHandle<()>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

impl ApiServer {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Binds the socket at `path` (mode 0600) and serves `node` on it.
pub async fn serve(node: Node, path: PathBuf) -> Result<ApiServer, NodeError> {
    let api_err = |source| NodeError::Api {
        path: path.clone(),
        source,
    };
    if path.as_os_str().len() > crate::home::MAX_SOCKET_PATH {
        return Err(api_err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path is too long for a Unix socket: use a shorter --home, or set \
             XDG_RUNTIME_DIR (the socket then goes there)",
        )));
    }
    if path.exists() {
        if UnixStream::connect(&path).await.is_ok() {
            return Err(api_err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another node is already serving this home",
            )));
        }
        // A socket left behind by a node that crashed.
        std::fs::remove_file(&path).map_err(api_err)?;
    }
    // The home folder is private (checked at start), so nobody else can
    // reach the socket even before its own mode is set.
    let owner = {
        use std::os::unix::fs::MetadataExt;
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        std::fs::metadata(dir).map_err(api_err)?.uid()
    };
    let listener = UnixListener::bind(&path).map_err(api_err)?;
    crate::identity::restrict_permissions(&path);
    let task = tokio::spawn(accept_loop(listener, node, owner));
    Ok(ApiServer { path, task })
}

async fn accept_loop(listener: UnixListener, node: Node, owner: u32) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, _)) => {
                // Only the home's owner speaks to the node.
                let peer = stream.peer_cred().map(|c| c.uid());
                if peer.as_ref().ok() != Some(&owner) {
                    tracing::warn!(?peer, owner, "API connection from another user refused");
                    continue;
                }
                let node = node.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve_connection(stream, node).await {
                        tracing::debug!(error = %e, "API connection ended");
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "API accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads one line of at most `max` bytes; `None` at end of stream.
pub(crate) async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    max: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let n = reader
        .take(max as u64 + 1)
        .read_until(b'\n', &mut line)
        .await?;
    if n == 0 {
        return Ok(None);
    }
    if line.len() > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("line over the limit of {max} bytes"),
        ));
    }
    Ok(Some(line))
}

/// Lines waiting to be written to one client, at most.
const OUT_QUEUE: usize = 256;

/// One client: requests answered in order; after `events.subscribe`,
/// events are written between the answers, on the same connection.
async fn serve_connection(stream: UnixStream, node: Node) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let (out, mut lines) = mpsc::channel::<Vec<u8>>(OUT_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(line) = lines.recv().await {
            write.write_all(&line).await?;
        }
        Ok::<(), std::io::Error>(())
    });
    let mut reader = BufReader::new(read);
    let mut streaming: Option<tokio::task::JoinHandle<()>> = None;
    while let Some(line) = read_line(&mut reader, MAX_REQUEST_LEN).await? {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let response = match parse_request(&line) {
            Ok(request) if request.method == "events.subscribe" => {
                let id = request.id.clone();
                match subscribe(&node, request, streaming.is_some()) {
                    Ok(resume) => {
                        // The answer goes before the first event.
                        let ok = Response::ok(id, json!({ "subscribed": true }));
                        if out.send(line_of(&ok)?).await.is_err() {
                            break;
                        }
                        streaming = Some(tokio::spawn(stream_events(
                            node.clone(),
                            resume,
                            out.clone(),
                        )));
                        continue;
                    }
                    Err((code, message)) => Response::err(id, code, message),
                }
            }
            Ok(request) => handle(&node, request).await,
            Err(response) => response,
        };
        if out.send(line_of(&response)?).await.is_err() {
            break;
        }
    }
    // The client sent all it will: its events go on until it hangs up.
    drop(out);
    if let Some(events) = streaming {
        let _ = events.await;
    }
    writer.await.map_err(std::io::Error::other)?
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct SubscribeParams {
    /// The cursor of the last event the client saw.
    after: Option<String>,
}

fn subscribe(
    node: &Node,
    request: Request,
    already: bool,
) -> Result<crate::journal::Resume, (i64, String)> {
    if already {
        return Err((
            INVALID_REQUEST,
            "this connection is subscribed to events already".to_owned(),
        ));
    }
    let p: SubscribeParams = match request.params {
        Value::Null => SubscribeParams::default(),
        value => params(value)?,
    };
    node.journal()
        .resume(p.after.as_deref())
        .map_err(|e| (INVALID_PARAMS, e))
}

/// Parses one request line: invalid JSON is a parse error; JSON that is not
/// a JSON-RPC 2.0 request is an invalid request.
fn parse_request(line: &[u8]) -> Result<Request, Response> {
    let value: Value = serde_json::from_slice(line)
        .map_err(|e| Response::err(Value::Null, PARSE_ERROR, format!("invalid JSON: {e}")))?;
    let id = value.get("id").cloned().unwrap_or(Value::Null);
    let request: Request = serde_json::from_value(value).map_err(|e| {
        Response::err(
            id.clone(),
            INVALID_REQUEST,
            format!("not a JSON-RPC request: {e}"),
        )
    })?;
    if request.jsonrpc != "2.0" {
        return Err(Response::err(
            id,
            INVALID_REQUEST,
            "jsonrpc must be \"2.0\"".into(),
        ));
    }
    Ok(request)
}

/// Writes the events a subscriber resumes with, then the live ones, each
/// with its `cursor`. Falling behind loses nothing the journal still
/// holds: the subscriber is resumed from its last event.
async fn stream_events(node: Node, mut resume: crate::journal::Resume, out: mpsc::Sender<Vec<u8>>) {
    let mut last = None;
    loop {
        if resume.gap {
            let gap = crate::Event::Gap {
                reason: "events may have been missed (the node restarted, or the cursor is older than the 4096 events it keeps): catch up with `conversations` and `history --after`".to_owned(),
            };
            if send_event(&out, serde_json::to_value(gap).unwrap_or(Value::Null))
                .await
                .is_err()
            {
                return;
            }
        }
        for event in std::mem::take(&mut resume.replay) {
            if write_journaled(&node, &out, &event).await.is_err() {
                return;
            }
            last = Some(event.seq);
        }
        loop {
            match resume.live.recv().await {
                Ok(event) => {
                    if write_journaled(&node, &out, &event).await.is_err() {
                        return;
                    }
                    last = Some(event.seq);
                }
                Err(broadcast::error::RecvError::Lagged(_)) => break,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
        let cursor = last.map(|seq| node.journal().cursor(seq));
        resume = match node.journal().resume(cursor.as_deref()) {
            Ok(resume) => resume,
            Err(_) => return,
        };
    }
}

async fn write_journaled(
    node: &Node,
    out: &mpsc::Sender<Vec<u8>>,
    event: &crate::journal::Journaled,
) -> Result<(), ()> {
    let mut params = serde_json::to_value(&event.event).unwrap_or(Value::Null);
    if let Some(fields) = params.as_object_mut() {
        fields.insert("cursor".into(), node.journal().cursor(event.seq).into());
    }
    send_event(out, params).await
}

async fn send_event(out: &mpsc::Sender<Vec<u8>>, params: Value) -> Result<(), ()> {
    let note = json!({ "jsonrpc": "2.0", "method": "event", "params": params });
    let line = line_of(&note).map_err(|_| ())?;
    out.send(line).await.map_err(|_| ())
}

fn line_of<T: serde::Serialize>(value: &T) -> std::io::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    Ok(bytes)
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeParams {
    device: String,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct LinkParams {
    with_account_key: bool,
}

fn params<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, (i64, String)> {
    serde_json::from_value(value).map_err(|e| (INVALID_PARAMS, format!("invalid params: {e}")))
}

fn node_err(e: NodeError) -> (i64, String) {
    (e.code(), e.to_string())
}

fn to_value<T: serde::Serialize>(value: T) -> Result<Value, (i64, String)> {
    serde_json::to_value(value).map_err(|e| (INVALID_REQUEST, e.to_string()))
}

async fn handle(node: &Node, request: Request) -> Response {
    let id = request.id.clone();
    match dispatch(node, request).await {
        Ok(result) => Response::ok(id, result),
        Err((code, message)) => Response::err(id, code, message),
    }
}

async fn dispatch(node: &Node, request: Request) -> Result<Value, (i64, String)> {
    match request.method.as_str() {
        "status" => to_value(node.status().await.map_err(node_err)?),
        "card" => Ok(json!({ "card": node.card().await.map_err(node_err)? })),
        "device.link" => {
            let p: LinkParams = if request.params.is_null() {
                LinkParams::default()
            } else {
                params(request.params)?
            };
            to_value(node.link_code(p.with_account_key).await.map_err(node_err)?)
        }
        "device.link_wait" => to_value(node.link_wait().await.map_err(node_err)?),
        "device.list" => to_value(node.devices().await.map_err(node_err)?),
        "device.revoke" => {
            let p: RevokeParams = params(request.params)?;
            to_value(node.revoke_device(&p.device).await.map_err(node_err)?)
        }
        "contact.add" => {
            let p: ContactAddParams = params(request.params)?;
            to_value(node.add_contact(&p.name, &p.card).await.map_err(node_err)?)
        }
        "contact.update" => {
            let p: ContactAddParams = params(request.params)?;
            to_value(
                node.update_contact(&p.name, &p.card)
                    .await
                    .map_err(node_err)?,
            )
        }
        "contact.list" => to_value(node.contacts().map_err(node_err)?),
        "conversations" => to_value(node.conversations().await.map_err(node_err)?),
        "push.set" => {
            let p: PushParams = params(request.params)?;
            node.set_push(Some(p.url)).await.map_err(node_err)?;
            Ok(json!({ "push": true }))
        }
        "push.off" => {
            node.set_push(None).await.map_err(node_err)?;
            Ok(json!({ "push": false }))
        }
        "contact.mute" => {
            let p: SwitchParams = params(request.params)?;
            let muted = node
                .mute(crate::MuteTarget::Contact(p.contact), p.on)
                .await
                .map_err(node_err)?;
            Ok(json!({ "muted": muted }))
        }
        "contact.receipts" => {
            let p: SwitchParams = params(request.params)?;
            to_value(
                node.set_receipts(&p.contact, p.on)
                    .await
                    .map_err(node_err)?,
            )
        }
        "contact.disappear" => {
            let p: TimerParams = params(request.params)?;
            to_value(node.set_timer(&p.contact, p.secs).await.map_err(node_err)?)
        }
        "contact.remove" => {
            let p: RemoveParams = params(request.params)?;
            let removed = node.remove_contact(&p.contact, p.delete_history).await;
            to_value(removed.map_err(node_err)?)
        }
        "contact.block" => {
            let p: SwitchParams = params(request.params)?;
            to_value(
                node.block_contact(&p.contact, p.on)
                    .await
                    .map_err(node_err)?,
            )
        }
        "contact.verify" => {
            let p: SwitchParams = params(request.params)?;
            to_value(
                node.verify_contact(&p.contact, p.on)
                    .await
                    .map_err(node_err)?,
            )
        }
        "presence" => {
            let p: PresenceParams = params(request.params)?;
            to_value(
                node.presence(&p.contact, p.refresh)
                    .await
                    .map_err(node_err)?,
            )
        }
        "presence.share" => {
            let p: SharePresenceParams = params(request.params)?;
            match node
                .share_presence(p.contact.as_deref(), p.on)
                .await
                .map_err(node_err)?
            {
                Some(view) => to_value(view),
                // The global switch: no one contact to show.
                None => Ok(json!({ "sharing_presence": p.on })),
            }
        }
        "send" => {
            let p: SendParams = params(request.params)?;
            let timeout = p
                .timeout_ms
                .map_or(DEFAULT_WAIT, Duration::from_millis)
                .min(MAX_WAIT);
            let receipt = match (p.wait, &p.file) {
                (None | Some(Status::Pending), None) => node.send(&p.contact, &p.text).await,
                (Some(wait), None) => node.send_and_wait(&p.contact, &p.text, wait, timeout).await,
                (None | Some(Status::Pending), Some(file)) => {
                    node.send_file(&p.contact, file, &p.text).await
                }
                (Some(wait), Some(file)) => {
                    node.send_file_and_wait(&p.contact, file, &p.text, wait, timeout)
                        .await
                }
            };
            to_value(receipt.map_err(node_err)?)
        }
        "file.list" => to_value(node.files().await.map_err(node_err)?),
        "file.get" => {
            let p: FileParams = params(request.params)?;
            to_value(node.file_get(&p.id, p.to).await.map_err(node_err)?)
        }
        "file.thumbnail" => {
            let p: FileParams = params(request.params)?;
            let jpeg = node.file_thumbnail(&p.id).map_err(node_err)?;
            use base64::Engine as _;
            Ok(json!({
                "id": p.id,
                "mime": "image/jpeg",
                "base64": base64::engine::general_purpose::STANDARD.encode(jpeg),
            }))
        }
        "file.cancel" => {
            let p: FileParams = params(request.params)?;
            to_value(node.file_cancel(&p.id).await.map_err(node_err)?)
        }
        "history" => {
            let p: HistoryParams = params(request.params)?;
            let page = parse_page(p.before, p.after)?;
            let limit = p
                .limit
                .unwrap_or(DEFAULT_HISTORY_LIMIT)
                .min(MAX_HISTORY_LIMIT);
            to_value(node.history(&p.contact, page, limit).map_err(node_err)?)
        }
        "read" => {
            let p: ContactParams = params(request.params)?;
            let marked = node.mark_read(&p.contact).await.map_err(node_err)?;
            Ok(json!({ "marked": marked }))
        }
        "search" => {
            let p: crate::rpc::SearchParams = params(request.params)?;
            to_value(node.search(p).await.map_err(node_err)?)
        }
        method if method.starts_with("group.") => group_dispatch(node, request).await,
        other => Err((METHOD_NOT_FOUND, format!("unknown method {other:?}"))),
    }
}

/// `before` or `after` (not both) as a page of history.
fn parse_page(
    before: Option<String>,
    after: Option<String>,
) -> Result<crate::store::Page, (i64, String)> {
    let id = |what: &str, s: String| {
        s.parse::<hush_protocol::MessageId>()
            .map_err(|e| (INVALID_PARAMS, format!("invalid `{what}`: {e}")))
    };
    match (before, after) {
        (Some(_), Some(_)) => Err((
            INVALID_PARAMS,
            "give `before` or `after`, not both".to_owned(),
        )),
        (None, Some(a)) => Ok(crate::store::Page::After(id("after", a)?)),
        (b, None) => Ok(crate::store::Page::Before(
            b.map(|b| id("before", b)).transpose()?,
        )),
    }
}

async fn group_dispatch(node: &Node, request: Request) -> Result<Value, (i64, String)> {
    let value = request.params;
    match request.method.as_str() {
        "group.mute" => {
            let p: GroupSwitchParams = params(value)?;
            let muted = node
                .mute(crate::MuteTarget::Group(p.group), p.on)
                .await
                .map_err(node_err)?;
            Ok(json!({ "muted": muted }))
        }
        "group.create" => {
            let p: GroupCreateParams = params(value)?;
            to_value(node.group_create(&p.name).await.map_err(node_err)?)
        }
        "group.invite" => {
            let p: GroupInviteParams = params(value)?;
            to_value(
                node.group_invite(&p.group, &p.contact, p.admin)
                    .await
                    .map_err(node_err)?,
            )
        }
        "group.join" => {
            let p: GroupParams = params(value)?;
            to_value(node.group_join(&p.group).await.map_err(node_err)?)
        }
        "group.leave" => {
            let p: GroupParams = params(value)?;
            to_value(node.group_leave(&p.group).await.map_err(node_err)?)
        }
        "group.remove" => {
            let p: GroupMemberParams = params(value)?;
            to_value(
                node.group_remove(&p.group, &p.member)
                    .await
                    .map_err(node_err)?,
            )
        }
        "group.disappear" => {
            let p: GroupTimerParams = params(value)?;
            to_value(node.group_timer(&p.group, p.secs).await.map_err(node_err)?)
        }
        "group.promote" => {
            let p: GroupMemberParams = params(value)?;
            to_value(
                node.group_promote(&p.group, &p.member)
                    .await
                    .map_err(node_err)?,
            )
        }
        "group.send" => {
            let p: GroupSendParams = params(value)?;
            let receipt = match p.wait {
                None | Some(Status::Pending | Status::Sent) => match &p.file {
                    Some(file) => node.group_send_file(&p.group, file, &p.text).await,
                    None => node.group_send(&p.group, &p.text).await,
                },
                Some(Status::Delivered) => {
                    let others = node
                        .group_members(&p.group)
                        .await
                        .map_err(node_err)?
                        .group
                        .members
                        .saturating_sub(1);
                    let timeout = p
                        .timeout_ms
                        .map_or(DEFAULT_WAIT, Duration::from_millis)
                        .min(MAX_WAIT);
                    match &p.file {
                        Some(file) => {
                            node.group_send_file_and_wait(&p.group, file, &p.text, others, timeout)
                                .await
                        }
                        None => {
                            node.group_send_and_wait(&p.group, &p.text, others, timeout)
                                .await
                        }
                    }
                }
                Some(Status::Read) => {
                    return Err((
                        INVALID_PARAMS,
                        "group.send can wait for `delivered` only; see read receipts in group.history".into(),
                    ));
                }
            };
            to_value(receipt.map_err(node_err)?)
        }
        "group.list" => to_value(node.group_list().await.map_err(node_err)?),
        "group.members" => {
            let p: GroupParams = params(value)?;
            to_value(node.group_members(&p.group).await.map_err(node_err)?)
        }
        "group.history" => {
            let p: GroupHistoryParams = params(value)?;
            let page = parse_page(p.before, p.after)?;
            let limit = p
                .limit
                .unwrap_or(DEFAULT_HISTORY_LIMIT)
                .min(MAX_HISTORY_LIMIT);
            to_value(
                node.group_history(&p.group, page, limit)
                    .await
                    .map_err(node_err)?,
            )
        }
        "group.read" => {
            let p: GroupParams = params(value)?;
            let marked = node.group_mark_read(&p.group).await.map_err(node_err)?;
            Ok(json!({ "marked": marked }))
        }
        other => Err((METHOD_NOT_FOUND, format!("unknown method {other:?}"))),
    }
}
