//! The compose line's commands (`/file`, `/search`, `/invite`, `/verify`,
//! `/help`) and the panels some of them open over the conversation until
//! Esc. A line that starts with `//` is sent as text, one `/` fewer.

use hush_protocol::text::for_terminal;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use serde_json::{Value, json};

use super::App;

/// What covers the conversation pane until Esc.
pub(super) enum Overlay {
    Help,
    /// Hits of a search, best first; Enter opens the selected one's
    /// conversation.
    Search {
        query: String,
        hits: Vec<Value>,
        selected: usize,
    },
    /// A contact's safety number, as digits and as a QR code; `v` marks
    /// the contact verified.
    Verify {
        contact: String,
        safety: String,
        qr: String,
        verified: bool,
    },
}

const HELP: &[&str] = &[
    "Enter            send (a line starting with // sends one /)",
    "Alt-Enter        a new line in the message",
    "Up / Down        the previous / next conversation",
    "PageUp / PageDn  older / newer messages",
    "Esc              close this panel; quit when none is open",
    "Ctrl-C, Ctrl-D   quit",
    "",
    "/file PATH       send a file (with the rest of the line as caption: /file PATH -- caption)",
    "/search WORDS    search every conversation (\"a phrase\", prefix*); Enter opens a hit",
    "/invite NAME     invite a contact to the open group",
    "/verify          the open contact's safety number and QR code; v marks them verified",
    "/help            this",
];

impl App {
    /// Runs `line` if it is a command; `false` when it is text to send.
    pub(super) async fn command(&mut self, line: &str) -> bool {
        let line = line.trim();
        if !line.starts_with('/') || line.starts_with("//") {
            return false;
        }
        let (name, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest.trim();
        match name {
            "/help" => self.overlay = Some(Overlay::Help),
            "/file" => self.send_file(rest).await,
            "/search" => self.search(rest).await,
            "/invite" => self.invite(rest).await,
            "/verify" => self.verify().await,
            other => {
                self.status = format!(
                    "unknown command {}: /help lists them (// sends a line starting with /)",
                    for_terminal(other, false)
                );
                // Kept, to correct.
                self.input = line.to_owned();
            }
        }
        true
    }

    async fn send_file(&mut self, rest: &str) {
        let (path, caption) = match rest.split_once(" -- ") {
            Some((path, caption)) => (path.trim(), caption.trim()),
            None => (rest, ""),
        };
        if path.is_empty() {
            self.status = "/file PATH [-- caption]: which file?".into();
            return;
        }
        let expanded = match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
            (Some(rel), Some(home)) => std::path::PathBuf::from(home).join(rel),
            _ => std::path::PathBuf::from(path),
        };
        // The node reads the file itself: it needs the whole path.
        let full = match std::path::absolute(&expanded) {
            Ok(p) if p.is_file() => p,
            _ => {
                self.status = format!("no file at {}", for_terminal(path, false));
                return;
            }
        };
        let Some(c) = self.current().cloned() else {
            self.status = "no conversation to send it to".into();
            return;
        };
        let file = full.to_string_lossy().into_owned();
        let (method, params) = if c.group {
            (
                "group.send",
                json!({ "group": c.name, "text": caption, "file": file }),
            )
        } else {
            (
                "send",
                json!({ "contact": c.name, "text": caption, "file": file }),
            )
        };
        if self.call(method, params).await.is_some() {
            self.status = format!("sending {}", for_terminal(path, false));
            self.scroll = 0;
            self.open().await;
        }
    }

    async fn search(&mut self, query: &str) {
        if query.is_empty() {
            self.status = "/search WORDS: what to look for?".into();
            return;
        }
        let Some(hits) = self
            .call("search", json!({ "query": query, "limit": 50 }))
            .await
        else {
            return;
        };
        let hits = hits.as_array().cloned().unwrap_or_default();
        let n = hits.len();
        let noun = if n == 1 { "hit" } else { "hits" };
        self.status = format!("{n} {noun}: Up/Down choose, Enter opens, Esc closes");
        self.overlay = Some(Overlay::Search {
            query: query.to_owned(),
            hits,
            selected: 0,
        });
    }

    async fn invite(&mut self, contact: &str) {
        let Some(c) = self.current().cloned() else {
            return;
        };
        if !c.group {
            self.status = "open a group's conversation to invite someone to it".into();
            return;
        }
        if contact.is_empty() {
            self.status = "/invite NAME: which contact?".into();
            return;
        }
        let params = json!({ "group": c.name, "contact": contact });
        if self.call("group.invite", params).await.is_some() {
            self.status = format!(
                "invited {} to {}",
                for_terminal(contact, false),
                for_terminal(&c.name, false)
            );
        }
    }

    async fn verify(&mut self) {
        let Some(c) = self.current().cloned() else {
            return;
        };
        if c.group {
            self.status =
                "/verify is for a contact: open their conversation (each member is verified as a contact)"
                    .into();
            return;
        }
        let Some(list) = self.call("contact.list", Value::Null).await else {
            return;
        };
        let Some(view) = list
            .as_array()
            .and_then(|l| l.iter().find(|v| v["name"] == c.name.as_str()))
        else {
            self.status = "that contact is gone".into();
            return;
        };
        let safety = view["safety_number"].as_str().unwrap_or("").to_owned();
        // Digits only: a smaller code (numeric mode) that fits 80×24.
        let digits: String = safety.chars().filter(char::is_ascii_digit).collect();
        let qr = crate::commands::qr_code(&digits).unwrap_or_default();
        self.overlay = Some(Overlay::Verify {
            contact: c.name.clone(),
            safety,
            qr,
            verified: view["verified"] == true,
        });
        self.status = "compare with them in person or on a call; v: they match, Esc: close".into();
    }

    /// A key while a panel is open; `true` when the panel took it.
    pub(super) async fn overlay_key(&mut self, code: ratatui::crossterm::event::KeyCode) -> bool {
        use ratatui::crossterm::event::KeyCode;
        let Some(overlay) = &mut self.overlay else {
            return false;
        };
        match (overlay, code) {
            (_, KeyCode::Esc) => {
                self.overlay = None;
                self.status.clear();
            }
            (Overlay::Search { selected, .. }, KeyCode::Up) => {
                *selected = selected.saturating_sub(1);
            }
            (Overlay::Search { hits, selected, .. }, KeyCode::Down) => {
                *selected = (*selected + 1).min(hits.len().saturating_sub(1));
            }
            (Overlay::Search { hits, selected, .. }, KeyCode::Enter) => {
                let Some(hit) = hits.get(*selected).cloned() else {
                    return true;
                };
                let name = hit["conversation"].as_str().unwrap_or("");
                let found = match hit["kind"].as_str() {
                    Some("contact") => self.position(false, name),
                    Some("group") => self.position(true, name),
                    // `gone`: its conversation is no longer listed.
                    _ => None,
                };
                let Some(i) = found else {
                    self.status = "that conversation is gone (removed or left)".into();
                    return true;
                };
                self.overlay = None;
                self.selected = i;
                self.limit = super::PAGE;
                self.scroll = 0;
                self.transfers.clear();
                self.open().await;
            }
            // The conversation behind a panel stays as it is.
            (
                Overlay::Help | Overlay::Verify { .. },
                KeyCode::Up | KeyCode::Down | KeyCode::Enter,
            ) => {}
            (Overlay::Verify { contact, .. }, KeyCode::Char('v')) => {
                let contact = contact.clone();
                let params = json!({ "contact": contact, "on": true });
                if self.call("contact.verify", params).await.is_some() {
                    self.status = format!("{} marked verified", for_terminal(&contact, false));
                    if let Some(Overlay::Verify { verified, .. }) = &mut self.overlay {
                        *verified = true;
                    }
                }
            }
            _ => return false,
        }
        true
    }

    /// The open panel's lines.
    pub(super) fn overlay_lines(&self, width: usize) -> Option<(String, Vec<Line<'static>>)> {
        let dim = Style::default().add_modifier(Modifier::DIM);
        Some(match self.overlay.as_ref()? {
            Overlay::Help => (
                "help".into(),
                HELP.iter().map(|l| Line::from((*l).to_owned())).collect(),
            ),
            Overlay::Search {
                query,
                hits,
                selected,
            } => {
                let mut lines = Vec::new();
                if hits.is_empty() {
                    lines.push(Line::from("nothing found"));
                }
                for (i, hit) in hits.iter().enumerate() {
                    let when = self.clock.day_time(hit["sent_at_ms"].as_u64().unwrap_or(0));
                    let head = format!(
                        "{when}  {} · {}",
                        for_terminal(hit["conversation"].as_str().unwrap_or(""), false),
                        for_terminal(hit["from"].as_str().unwrap_or(""), false),
                    );
                    let style = if i == *selected {
                        Style::default().add_modifier(Modifier::REVERSED)
                    } else {
                        Style::default()
                    };
                    lines.push(Line::from(Span::styled(head, style)));
                    let snippet = for_terminal(hit["snippet"].as_str().unwrap_or(""), false);
                    let snippet: String = snippet.chars().take(width.saturating_sub(2)).collect();
                    lines.push(Line::from(Span::styled(format!("  {snippet}"), dim)));
                }
                (format!("search: {}", for_terminal(query, false)), lines)
            }
            Overlay::Verify {
                contact,
                safety,
                qr,
                verified,
            } => {
                // The digits beside the code, three groups a row, so the
                // whole panel fits 80×24.
                let groups: Vec<&str> = safety.split_whitespace().collect();
                let mut rows = groups.chunks(3).map(|row| row.join(" "));
                let lines: Vec<Line<'static>> = qr
                    .lines()
                    .enumerate()
                    .map(|(i, code)| match i {
                        0 => Line::from(code.to_owned()),
                        _ => Line::from(format!("{code}  {}", rows.next().unwrap_or_default())),
                    })
                    .collect();
                let state = if *verified {
                    "verified ✓"
                } else {
                    "v: it matches theirs"
                };
                let title = format!(
                    "safety number with {} · {state}",
                    for_terminal(contact, false)
                );
                (title, lines)
            }
        })
    }
}
