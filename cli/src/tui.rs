//! `hush tui`: a full-screen chat client of the running node.
//!
//! It is a thin client of the local API (`conversations`, `history`,
//! `group.history`, `send`, `group.send`, `read`, `group.read`, `presence`,
//! `search`, `group.invite`, `contact.list`, `contact.verify`, and the
//! event stream): anything it does, a bot can do over the same API. Two
//! connections: one for requests, one for events; when the node goes away
//! the screen says so and both are made again every second.
//!
//! ```text
//!  key thread ─┐                    ┌─ requests (Client) ─▶ node
//!              ├─▶ mpsc ─▶ App ─────┤
//!  events task ┘   (Input)   │      └─ draw (ratatui) ─▶ terminal
//!                            └─ events applied in place (messages of the
//!                               open conversation, statuses, presence, file
//!                               progress); the list reloaded for the rest
//! ```
//!
//! Commands on the compose line (`/file`, `/search`, `/invite`, `/verify`,
//! `/help`) live in `slash`.
//!
//! Whatever others wrote is shown through `for_terminal`: their control
//! characters appear escaped, never reach the terminal. The terminal is
//! restored on every exit: return, error, Ctrl-C (a key here: raw mode) and
//! panic (a hook).

mod slash;

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result};
use hush_node::{Client, Home};
use hush_protocol::text::for_terminal;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{
    self, Event as Term, KeyCode, KeyEvent, KeyEventKind, KeyModifiers,
};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::layout::{Constraint, Direction, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, List, ListItem, ListState, Paragraph, Wrap};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Messages shown per conversation (the newest); PageUp loads more.
const PAGE: usize = 200;
/// Longest compose text, in bytes (the node's own limit).
const MAX_COMPOSE: usize = hush_protocol::MAX_TEXT_LEN;

/// What wakes the screen.
enum Input {
    Key(KeyEvent),
    Resize,
    /// Something happened at the node (an event), or the event stream
    /// ended (`None`).
    Node(Option<Value>),
}

/// Restores the terminal when dropped (and, through the panic hook, on a
/// panic).
struct Screen;

impl Screen {
    fn enter() -> Result<Self> {
        enable_raw_mode().context("this terminal does not take raw mode")?;
        execute!(std::io::stdout(), EnterAlternateScreen)?;
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        Ok(Self)
    }
}

fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(
        std::io::stdout(),
        LeaveAlternateScreen,
        ratatui::crossterm::cursor::Show
    );
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// The local time zone's offset, read at start (`read_local_offset`).
static LOCAL_OFFSET: OnceLock<time::UtcOffset> = OnceLock::new();

/// Reads the local time zone's offset from UTC. The `time` crate reads it
/// only while the process has a single thread (the C library's time zone
/// state is not thread-safe), so `main` calls this before the runtime
/// starts; if it cannot, times show in UTC. A change of offset while the
/// TUI runs (daylight saving) shows after a restart.
pub fn read_local_offset() {
    if let Ok(offset) = time::UtcOffset::current_local_offset() {
        let _ = LOCAL_OFFSET.set(offset);
    }
}

/// How times are shown: local when the offset could be read, else UTC.
#[derive(Debug, Clone, Copy)]
struct Clock {
    offset: Option<time::UtcOffset>,
}

impl Clock {
    fn local() -> Self {
        Self {
            offset: LOCAL_OFFSET.get().copied(),
        }
    }

    /// The date (`YYYY-MM-DD`) and time (`HH:MM`) of a Unix ms instant.
    fn parts(&self, ms: u64) -> (String, String) {
        let secs = i64::try_from(ms / 1000).unwrap_or(0);
        // A sender picks its message's time: one near year 9999 must not
        // overflow the calendar in a zone east of UTC (then shown in UTC).
        let utc = time::OffsetDateTime::from_unix_timestamp(secs)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let at = utc
            .checked_to_offset(self.offset.unwrap_or(time::UtcOffset::UTC))
            .unwrap_or(utc);
        let date = at.date();
        (
            format!(
                "{:04}-{:02}-{:02}",
                date.year(),
                u8::from(date.month()),
                date.day()
            ),
            format!("{:02}:{:02}", at.hour(), at.minute()),
        )
    }

    fn day_time(&self, ms: u64) -> String {
        let (date, time) = self.parts(ms);
        format!("{date} {time}")
    }

    /// What the conversation's title says of the times.
    fn zone(&self) -> &'static str {
        if self.offset.is_some() {
            ""
        } else {
            " (times UTC)"
        }
    }
}

/// A duration as the list shows a last seen: `now`, `5m`, `3h`, `2d`.
fn ago(ms: u64) -> String {
    let minutes = ms / 60_000;
    match minutes {
        0 => "now".into(),
        1..60 => format!("{minutes}m"),
        60..1440 => format!("{}h", minutes / 60),
        _ => format!("{}d", minutes / 1440),
    }
}

/// A file's transfer as `file` events report it.
#[derive(Debug, Clone)]
struct Transfer {
    state: String,
    done: u64,
    size: u64,
}

/// One conversation of the list.
#[derive(Debug, Clone)]
struct Conversation {
    group: bool,
    name: String,
    unread: u64,
}

struct App {
    home: Home,
    requests: Option<Client>,
    conversations: Vec<Conversation>,
    selected: usize,
    /// The open conversation's messages (API views, oldest first).
    messages: Vec<Value>,
    /// How many more lines than fit the user scrolled up.
    scroll: u16,
    limit: usize,
    input: String,
    status: String,
    connected: bool,
    /// Contacts known online (from `presence`, then `presence` events).
    online: HashSet<String>,
    /// When each contact was last seen (Unix ms), where they share it.
    last_seen: HashMap<String, u64>,
    /// Files of the open conversation being fetched or sent, by message id.
    transfers: HashMap<String, Transfer>,
    /// A panel over the conversation (`slash`).
    overlay: Option<slash::Overlay>,
    clock: Clock,
}

/// `hush tui [--open NAME]`.
pub async fn run(home: &Home, open: Option<String>) -> Result<()> {
    // Fails here (before the screen changes) when the node is not running.
    let requests = Client::connect(home).await?;
    let (tx, mut rx) = mpsc::channel::<Input>(256);
    spawn_keys(tx.clone());
    spawn_events(home.clone(), tx.clone());
    let mut app = App {
        home: home.clone(),
        requests: Some(requests),
        conversations: Vec::new(),
        selected: 0,
        messages: Vec::new(),
        scroll: 0,
        limit: PAGE,
        input: String::new(),
        status: "Enter sends, Alt-Enter a new line, Up/Down a conversation, PageUp older, /help, Ctrl-C quits".into(),
        connected: true,
        online: HashSet::new(),
        last_seen: HashMap::new(),
        transfers: HashMap::new(),
        overlay: None,
        clock: Clock::local(),
    };
    app.reload_list().await;
    app.reload_presence().await;
    if let Some(name) = open {
        // A contact's conversation first, else a group's of that name.
        let found = app
            .position(false, &name)
            .or_else(|| app.position(true, &name));
        match found {
            Some(i) => app.selected = i,
            None => app.status = format!("no conversation named {}", for_terminal(&name, false)),
        }
    }
    app.open().await;
    let _screen = Screen::enter()?;
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    terminal.clear()?;
    loop {
        terminal.draw(|f| app.draw(f))?;
        let Some(input) = rx.recv().await else {
            return Ok(());
        };
        match input {
            Input::Key(key) => {
                if !app.key(key).await {
                    return Ok(());
                }
            }
            Input::Resize => terminal.autoresize()?,
            Input::Node(Some(event)) => app.on_event(&event).await,
            Input::Node(None) => {
                app.connected = false;
                app.requests = None;
                app.status = "the node is not running: reconnecting…".into();
            }
        }
    }
}

/// Reads keys on a thread of its own (crossterm's reads block).
fn spawn_keys(tx: mpsc::Sender<Input>) {
    std::thread::spawn(move || {
        loop {
            let input = match event::read() {
                Ok(Term::Key(key)) if key.kind != KeyEventKind::Release => Input::Key(key),
                Ok(Term::Resize(..)) => Input::Resize,
                Ok(_) => continue,
                Err(_) => return,
            };
            if tx.blocking_send(input).is_err() {
                return;
            }
        }
    });
}

/// Follows the node's events; when the stream ends, says so and connects
/// again every second (resuming after the last event seen).
fn spawn_events(home: Home, tx: mpsc::Sender<Input>) {
    tokio::spawn(async move {
        let mut cursor: Option<String> = None;
        loop {
            if let Ok(mut client) = Client::connect(&home).await {
                let subscribed = match &cursor {
                    Some(c) => client.subscribe_after(c).await,
                    None => client.subscribe().await,
                };
                if subscribed.is_ok() {
                    // Tells the app it is back (it reloads).
                    if tx
                        .send(Input::Node(Some(json!({"type": "connected"}))))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    while let Ok(Some(event)) = client.next_event().await {
                        if let Some(c) = event["cursor"].as_str() {
                            cursor = Some(c.to_owned());
                        }
                        if tx.send(Input::Node(Some(event))).await.is_err() {
                            return;
                        }
                    }
                    if tx.send(Input::Node(None)).await.is_err() {
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

impl App {
    async fn call(&mut self, method: &str, params: Value) -> Option<Value> {
        if self.requests.is_none() {
            self.requests = Client::connect(&self.home).await.ok();
        }
        let client = self.requests.as_mut()?;
        match client.call(method, params).await {
            Ok(value) => Some(value),
            Err(hush_node::ClientError::Rpc(e)) => {
                self.status = for_terminal(&e.message, false);
                None
            }
            Err(e) => {
                self.status = for_terminal(&e.to_string(), false);
                self.requests = None;
                None
            }
        }
    }

    fn current(&self) -> Option<&Conversation> {
        self.conversations.get(self.selected)
    }

    /// Where a contact's (`group` false) or a group's conversation is in
    /// the list.
    fn position(&self, group: bool, name: &str) -> Option<usize> {
        self.conversations
            .iter()
            .position(|c| c.group == group && c.name == name)
    }

    async fn reload_list(&mut self) {
        let Some(list) = self.call("conversations", Value::Null).await else {
            return;
        };
        let was = self.current().map(|c| (c.group, c.name.clone()));
        self.conversations = list
            .as_array()
            .map(|l| {
                l.iter()
                    .map(|c| Conversation {
                        group: c["kind"] == "group",
                        name: c["name"].as_str().unwrap_or("").to_owned(),
                        unread: c["unread"].as_u64().unwrap_or(0),
                    })
                    .collect()
            })
            .unwrap_or_default();
        // The same conversation stays selected when the order changes (a
        // contact and a group may share a name).
        if let Some(i) = was.and_then(|(group, name)| self.position(group, &name)) {
            self.selected = i;
        }
        self.selected = self
            .selected
            .min(self.conversations.len().saturating_sub(1));
    }

    /// Who of the contacts is online now (one `presence` each: at start
    /// and after a reconnect; `presence` events keep it current).
    async fn reload_presence(&mut self) {
        let contacts: Vec<String> = self
            .conversations
            .iter()
            .filter(|c| !c.group)
            .map(|c| c.name.clone())
            .collect();
        self.online.clear();
        for name in contacts {
            if let Some(p) = self.call("presence", json!({ "contact": name })).await {
                if let Some(ms) = p["last_seen_ms"].as_u64() {
                    self.last_seen.insert(name.clone(), ms);
                }
                if p["state"] == "online" {
                    self.online.insert(name);
                }
            }
        }
    }

    /// Loads the selected conversation and marks it read.
    async fn open(&mut self) {
        let Some(c) = self.current().cloned() else {
            self.messages.clear();
            return;
        };
        let (method, key, read) = if c.group {
            ("group.history", "group", "group.read")
        } else {
            ("history", "contact", "read")
        };
        let params = json!({ key: c.name, "limit": self.limit });
        if let Some(page) = self.call(method, params).await {
            self.messages = page.as_array().cloned().unwrap_or_default();
        }
        if c.unread > 0 {
            self.call(read, json!({ key: c.name })).await;
            self.reload_list().await;
        }
    }

    async fn on_event(&mut self, event: &Value) {
        match event["type"].as_str() {
            Some("connected") => {
                if !self.connected {
                    self.status = "connected to the node again".into();
                }
                self.connected = true;
                self.reload_presence().await;
            }
            Some("presence") => {
                let contact = event["contact"].as_str().unwrap_or("").to_owned();
                // Its last seen, in ms.
                let seen = self.call("presence", json!({ "contact": contact })).await;
                if let Some(ms) = seen.and_then(|p| p["last_seen_ms"].as_u64()) {
                    self.last_seen.insert(contact.clone(), ms);
                }
                if event["state"] == "online" {
                    self.online.insert(contact);
                } else {
                    self.online.remove(&contact);
                }
                return;
            }
            Some("message") | Some("group_message") => {
                let group = event["type"] == "group_message";
                let name = if group {
                    event["group"].as_str()
                } else {
                    event["contact"].as_str()
                };
                let open = self
                    .current()
                    .is_some_and(|c| c.group == group && Some(c.name.as_str()) == name);
                if open && self.add_message(&event["message"]) {
                    // Read: it is on the screen.
                    let (read, key) = if group {
                        ("group.read", "group")
                    } else {
                        ("read", "contact")
                    };
                    if let Some(name) = name.map(str::to_owned) {
                        self.call(read, json!({ key: name })).await;
                    }
                }
                self.reload_list().await;
                if !open {
                    return;
                }
                // A message of ours from another device, or out of order:
                // the page again, in the store's order.
                if !self.in_order() {
                    self.open().await;
                }
                return;
            }
            Some("file") => {
                let file = &event["file"];
                let open = self
                    .current()
                    .is_some_and(|c| file["conversation"] == c.name.as_str());
                if !open {
                    return;
                }
                if let Some(id) = file["id"].as_str() {
                    let known = self.messages.iter().any(|m| m["id"] == id);
                    self.transfers.insert(
                        id.to_owned(),
                        Transfer {
                            state: file["state"].as_str().unwrap_or("").to_owned(),
                            done: file["done"].as_u64().unwrap_or(0),
                            size: file["size"].as_u64().unwrap_or(0),
                        },
                    );
                    if known {
                        return;
                    }
                }
            }
            Some("sealing") => {
                let done = event["done"].as_u64().unwrap_or(0);
                let total = event["total"].as_u64().unwrap_or(0).max(1);
                self.status = format!(
                    "{} {}: {}%",
                    for_terminal(event["step"].as_str().unwrap_or(""), false),
                    for_terminal(event["path"].as_str().unwrap_or(""), false),
                    done.saturating_mul(100) / total
                );
                return;
            }
            Some("status") | Some("group_status") => {
                // Applied here: the event can come before the store has it.
                let id = event["id"].as_str();
                for m in &mut self.messages {
                    if m["id"].as_str() == id {
                        m["status"] = event["status"].clone();
                    }
                }
                return;
            }
            Some("gap")
            | Some("lagged")
            | Some("group_receipt")
            | Some("contact_added")
            | Some("contact_removed")
            | Some("group_changed")
            | Some("disappeared") => {}
            _ => return,
        }
        self.reload_list().await;
        self.open().await;
    }

    /// Adds a message that arrived to the open conversation; `false` if it
    /// was there already.
    fn add_message(&mut self, message: &Value) -> bool {
        let Some(id) = message["id"].as_str() else {
            return false;
        };
        if self.messages.iter().any(|m| m["id"] == id) {
            return false;
        }
        self.messages.push(message.clone());
        let excess = self.messages.len().saturating_sub(self.limit);
        self.messages.drain(..excess);
        true
    }

    /// Whether the messages are in the order they were sent.
    fn in_order(&self) -> bool {
        self.messages
            .windows(2)
            .all(|w| w[0]["sent_at_ms"].as_u64() <= w[1]["sent_at_ms"].as_u64())
    }

    /// Handles a key; false: quit.
    async fn key(&mut self, key: KeyEvent) -> bool {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('d')) {
            return false;
        }
        if self.overlay.is_some() && self.overlay_key(key.code).await {
            return true;
        }
        match key.code {
            KeyCode::Esc => return false,
            KeyCode::Enter
                if key.modifiers.contains(KeyModifiers::ALT) && self.input.len() < MAX_COMPOSE =>
            {
                self.input.push('\n');
            }
            KeyCode::Enter if key.modifiers.contains(KeyModifiers::ALT) => {}
            KeyCode::Enter => self.submit().await,
            KeyCode::Backspace => {
                self.input.pop();
            }
            KeyCode::Up | KeyCode::Down => {
                let n = self.conversations.len();
                if n > 0 {
                    self.selected = if key.code == KeyCode::Up {
                        (self.selected + n - 1) % n
                    } else {
                        (self.selected + 1) % n
                    };
                    self.limit = PAGE;
                    self.scroll = 0;
                    self.transfers.clear();
                    self.open().await;
                }
            }
            KeyCode::PageUp => {
                self.scroll = self.scroll.saturating_add(10);
                if usize::from(self.scroll) + 40 > self.messages.len()
                    && self.messages.len() >= self.limit
                {
                    self.limit = (self.limit + PAGE).min(hush_node::MAX_HISTORY_LIMIT);
                    self.open().await;
                }
            }
            KeyCode::PageDown => self.scroll = self.scroll.saturating_sub(10),
            KeyCode::Char(c) if !ctrl && self.input.len() + c.len_utf8() <= MAX_COMPOSE => {
                self.input.push(c);
            }
            _ => {}
        }
        true
    }

    async fn submit(&mut self) {
        let text = std::mem::take(&mut self.input);
        if text.trim().is_empty() {
            return;
        }
        if self.command(&text).await {
            return;
        }
        // `//…` sends `/…`.
        let text = match text.trim_start().strip_prefix("//") {
            Some(rest) => format!("/{rest}"),
            None => text,
        };
        let Some(c) = self.current().cloned() else {
            self.status = "no conversation: add a contact with `hush contact add`".into();
            self.input = text;
            return;
        };
        let sent = if c.group {
            self.call("group.send", json!({ "group": c.name, "text": text }))
                .await
        } else {
            self.call("send", json!({ "contact": c.name, "text": text }))
                .await
        };
        if sent.is_none() {
            // Kept, to send again.
            self.input = text;
            return;
        }
        self.scroll = 0;
        self.open().await;
    }

    fn draw(&self, f: &mut ratatui::Frame) {
        let rows = Layout::default()
            .direction(Direction::Vertical)
            .constraints([
                Constraint::Min(3),
                Constraint::Length(3),
                Constraint::Length(1),
            ])
            .split(f.area());
        let columns = Layout::default()
            .direction(Direction::Horizontal)
            .constraints([Constraint::Length(24), Constraint::Min(20)])
            .split(rows[0]);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let items: Vec<ListItem> = self
            .conversations
            .iter()
            .map(|c| {
                let mark = match (c.group, self.online.contains(&c.name)) {
                    (true, _) => "#",
                    (false, true) => "● ",
                    (false, false) => "○ ",
                };
                let unread = if c.unread > 0 {
                    format!(" ({})", c.unread)
                } else {
                    String::new()
                };
                // How long ago an offline contact was last seen.
                let seen = match self.last_seen.get(&c.name) {
                    Some(ms) if !c.group && !self.online.contains(&c.name) => {
                        format!(" {}", ago(now_ms.saturating_sub(*ms)))
                    }
                    _ => String::new(),
                };
                ListItem::new(format!(
                    "{mark}{}{unread}{seen}",
                    for_terminal(&c.name, false)
                ))
            })
            .collect();
        let mut state = ListState::default().with_selected(Some(self.selected));
        let list = List::new(items)
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title("conversations"),
            )
            .highlight_style(Style::default().add_modifier(Modifier::REVERSED));
        f.render_stateful_widget(list, columns[0], &mut state);

        let pane = columns[1];
        let width = usize::from(pane.width.saturating_sub(2)).max(10);
        let height = usize::from(pane.height.saturating_sub(2));
        let body = match self.overlay_lines(width) {
            // A panel: from its top (a search's selected hit kept in view).
            Some((title, lines)) => {
                let top = match &self.overlay {
                    Some(slash::Overlay::Search { selected, .. }) => {
                        (selected * 2 + 2).saturating_sub(height)
                    }
                    _ => 0,
                };
                let lines = lines.get(top..).unwrap_or_default().to_vec();
                let panel = Paragraph::new(lines).block(
                    Block::default()
                        .borders(Borders::ALL)
                        .title(format!("{title} (Esc closes)")),
                );
                // Help wraps at 80×24; the search and the code keep rows.
                match &self.overlay {
                    Some(slash::Overlay::Help) => panel.wrap(Wrap { trim: false }),
                    _ => panel,
                }
            }
            None => {
                let lines = self.message_lines(width);
                let top = lines
                    .len()
                    .saturating_sub(height + usize::from(self.scroll));
                Paragraph::new(lines[top..].to_vec())
                    .block(Block::default().borders(Borders::ALL).title(self.title()))
            }
        };
        f.render_widget(body, pane);

        let compose = Paragraph::new(self.input.replace('\n', "⏎"))
            .block(Block::default().borders(Borders::ALL).title("message"));
        f.render_widget(compose, rows[1]);
        let x = rows[1].x + 1 + u16::try_from(self.input.chars().count()).unwrap_or(u16::MAX);
        f.set_cursor_position((x.min(rows[1].right().saturating_sub(2)), rows[1].y + 1));
        let state = if self.connected { "" } else { "[offline] " };
        f.render_widget(Paragraph::new(format!("{state}{}", self.status)), rows[2]);
    }

    /// The open conversation's title: its name, and for a contact whether
    /// they are online or when they were last seen.
    fn title(&self) -> String {
        let Some(c) = self.current() else {
            return "no conversation".into();
        };
        let name = for_terminal(&c.name, false);
        let zone = self.clock.zone();
        if c.group {
            return format!("{name}{zone}");
        }
        let presence = if self.online.contains(&c.name) {
            " · online".to_owned()
        } else {
            match self.last_seen.get(&c.name) {
                Some(ms) => format!(" · last seen {}", self.clock.day_time(*ms)),
                None => String::new(),
            }
        };
        format!("{name}{presence}{zone}")
    }

    /// A file message's label: its name and where its transfer stands.
    fn file_label(&self, id: &str, file: &Value) -> String {
        let name = for_terminal(file["name"].as_str().unwrap_or("file"), false);
        let (state, done, size) = match self.transfers.get(id) {
            Some(t) => (t.state.as_str(), t.done, t.size),
            None => (
                file["state"].as_str().unwrap_or(""),
                file["done"].as_u64().unwrap_or(0),
                file["size"].as_u64().unwrap_or(0),
            ),
        };
        let progress = match state {
            "complete" => " ✓ saved".to_owned(),
            "shared" => " shared".to_owned(),
            "offered" => " (hush file get to fetch)".to_owned(),
            "failed" => " fetch failed (hush file get retries)".to_owned(),
            "cancelled" => " cancelled".to_owned(),
            _ if size > 0 => format!(" {}%", done.min(size).saturating_mul(100) / size),
            _ => String::new(),
        };
        format!("[file {name}{progress}]")
    }

    /// The open conversation as lines `width` wide: a line per day, then
    /// `HH:MM from: text  marks`, wrapped.
    fn message_lines(&self, width: usize) -> Vec<Line<'static>> {
        let mut out = Vec::new();
        let mut day = String::new();
        for m in &self.messages {
            let (date, time) = self.clock.parts(m["sent_at_ms"].as_u64().unwrap_or(0));
            if date != day {
                day = date;
                out.push(Line::from(Span::styled(
                    format!("── {day} ──"),
                    Style::default().add_modifier(Modifier::DIM),
                )));
            }
            let from = for_terminal(m["from"].as_str().unwrap_or(""), false);
            let mut text = for_terminal(m["text"].as_str().unwrap_or(""), true);
            if let Some(file) = m.get("file").filter(|f| f.is_object()) {
                let label = self.file_label(m["id"].as_str().unwrap_or(""), file);
                text = format!("{label} {text}");
            }
            if m["kind"] == "timer" {
                text = "(set the disappearing timer)".into();
            }
            let outgoing = m["outgoing"] == true || m["from"] == "you";
            let marks = match (outgoing, m["status"].as_str()) {
                (true, Some("read")) => " ✓✓ read",
                (true, Some("delivered")) => " ✓✓",
                (true, Some("sent")) => " ✓",
                (true, Some("pending")) => " …",
                _ => "",
            };
            let timer = if m["disappears_at"].is_string() {
                " ⏱"
            } else {
                ""
            };
            let whole = format!("{time} {from}: {text}{marks}{timer}");
            for raw in whole.split('\n') {
                let chars: Vec<char> = raw.chars().collect();
                for chunk in chars.chunks(width.max(1)) {
                    out.push(Line::from(chunk.iter().collect::<String>()));
                }
                if chars.is_empty() {
                    out.push(Line::from(String::new()));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_seen_reads_in_the_largest_whole_unit() {
        assert_eq!(ago(59_000), "now");
        assert_eq!(ago(5 * 60_000), "5m");
        assert_eq!(ago(3 * 3_600_000 + 1), "3h");
        assert_eq!(ago(49 * 3_600_000), "2d");
    }

    #[test]
    fn times_show_in_the_offset_given() {
        let utc = Clock { offset: None };
        let ist = Clock {
            offset: time::UtcOffset::from_hms(5, 30, 0).ok(),
        };
        // 2026-12-03 22:45 UTC.
        let ms = 1_796_337_900_000;
        assert_eq!(utc.day_time(ms), "2026-12-03 22:45");
        assert_eq!(ist.day_time(ms), "2026-12-04 04:15");
        assert_eq!(utc.zone(), " (times UTC)");
        // A sender may date a message at the calendar's end: shown, in UTC,
        // rather than overflowing east of it.
        let end = 253_402_300_000_000 - 1_800_000;
        assert_eq!(ist.day_time(end), "9999-12-31 23:16");
        assert_eq!(ist.zone(), "");
    }
}
