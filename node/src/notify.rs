//! Local notifications: for each new message of a conversation that is
//! not muted, once it is stored, a desktop notification when a session bus
//! is present (`--desktop-notify`, on by default; through `notify-rust`),
//! and a command (`--notify-cmd CMD`).
//!
//! A desktop notification says who wrote and where (`hush · bob`, `hush ·
//! bob in team`) and, only with `--notify-with-text`, the text (markup
//! escaped: notification servers read a subset of HTML).
//!
//! The command runs through `sh -c` with, in its environment:
//! `HUSH_KIND` (`message`, `file` or `group_message`), `HUSH_FROM` (the
//! author's name as this device knows it), `HUSH_CONVERSATION` (the contact
//! or the group), `HUSH_ID` (the message id), and `HUSH_TEXT` only with
//! `--notify-with-text`. Names and text come from other people: control
//! characters are replaced, so a value cannot smuggle escape sequences to
//! a terminal or break a line. At most [`MAX_RUNNING`] commands run at
//! once (one more is skipped and logged), each for at most
//! [`MAX_RUN`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::view::{Event, MessageView};

/// Notification commands running at once, at most.
pub const MAX_RUNNING: usize = 4;
/// A notification command is stopped after this long.
pub const MAX_RUN: Duration = Duration::from_secs(30);
/// Longest text handed to the command, in bytes.
const MAX_TEXT: usize = 1024;

/// How new messages are announced on this machine.
#[derive(Debug, Clone, Default)]
pub struct NotifyConfig {
    /// What `--notify-cmd` runs (`None`: no command).
    pub command: Option<String>,
    /// Desktop notifications, when a session bus is present.
    pub desktop: bool,
    /// Hand the message's text to the command and the desktop
    /// (`--notify-with-text`).
    pub with_text: bool,
}

impl NotifyConfig {
    /// Whether anything would be announced.
    pub fn is_on(&self) -> bool {
        self.command.is_some() || self.desktop
    }
}

/// Where a session bus is, if this process has one: `$DBUS_SESSION_BUS_ADDRESS`,
/// or the `bus` socket in `$XDG_RUNTIME_DIR` (as zbus finds it).
pub fn session_bus() -> Option<String> {
    if let Some(addr) = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").filter(|a| !a.is_empty()) {
        return Some(addr.to_string_lossy().into_owned());
    }
    let run = std::env::var_os("XDG_RUNTIME_DIR").filter(|r| !r.is_empty())?;
    let socket = std::path::Path::new(&run).join("bus");
    socket
        .exists()
        .then(|| format!("unix:path={}", socket.display()))
}

/// One new message, as the command hears of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notification {
    pub kind: &'static str,
    pub from: String,
    pub conversation: String,
    pub id: String,
    pub text: String,
    /// The text with its line breaks (for the desktop).
    pub lines: String,
}

impl Notification {
    /// The notification an event calls for: a message someone else wrote
    /// (not one of ours, not a timer change).
    pub(crate) fn of(event: &Event) -> Option<Self> {
        let (kind, conversation, message) = match event {
            Event::Message {
                contact, message, ..
            } => (
                if message.file.is_some() {
                    "file"
                } else {
                    "message"
                },
                contact,
                message,
            ),
            Event::GroupMessage { group, message, .. } => ("group_message", group, message),
            _ => return None,
        };
        Self::wanted(message)?;
        Some(Self {
            kind,
            from: clean(&message.from),
            conversation: clean(conversation),
            id: message.id.clone(),
            text: clean(&message.text),
            lines: message
                .text
                .split('\n')
                .map(clean)
                .collect::<Vec<_>>()
                .join("\n"),
        })
    }

    fn wanted(message: &MessageView) -> Option<()> {
        (!message.outgoing && message.kind == "message").then_some(())
    }

    /// The desktop notification's title and body.
    fn desktop(&self, with_text: bool) -> (String, String) {
        let title = match self.kind {
            "group_message" => format!("hush · {} in {}", self.from, self.conversation),
            _ => format!("hush · {}", self.from),
        };
        let body = match (with_text, self.kind) {
            (true, _) if !self.lines.is_empty() => markup_escaped(&self.lines),
            (_, "file") => "sent you a file".to_owned(),
            _ => "new message".to_owned(),
        };
        (title, body)
    }
}

/// `&`, `<` and `>` as entities: notification bodies are markup.
fn markup_escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Control characters (and bidi overrides) become U+FFFD; long text is cut.
fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_TEXT));
    for c in s.chars() {
        if out.len() + c.len_utf8() > MAX_TEXT {
            break;
        }
        let unsafe_char = c.is_control() || hush_protocol::text::is_unsafe_in_name(c);
        out.push(if unsafe_char { '\u{FFFD}' } else { c });
    }
    out
}

/// Announces notifications, a bounded number at once (commands and
/// desktop notifications each their own share).
#[derive(Debug, Clone)]
pub(crate) struct Notifier {
    config: NotifyConfig,
    running: Arc<Semaphore>,
    showing: Arc<Semaphore>,
}

impl Notifier {
    /// A notifier for `config`; desktop notifications only where a
    /// session bus is present.
    pub(crate) fn new(mut config: NotifyConfig) -> Self {
        if config.desktop {
            match session_bus() {
                Some(bus) => tracing::info!(%bus, "desktop notifications on"),
                None => {
                    tracing::debug!("no session bus: no desktop notifications");
                    config.desktop = false;
                }
            }
        }
        Self {
            config,
            running: Arc::new(Semaphore::new(MAX_RUNNING)),
            showing: Arc::new(Semaphore::new(MAX_RUNNING)),
        }
    }

    /// Announces `n`: the desktop, then the command.
    pub(crate) fn notify(&self, n: Notification) {
        if self.config.desktop {
            self.show(&n);
        }
        if let Some(command) = &self.config.command {
            self.run(command, n);
        }
    }

    /// A desktop notification (skipped when [`MAX_RUNNING`] are still
    /// being shown; each gives up after [`MAX_RUN`]: a bus that does not
    /// answer holds no more).
    fn show(&self, n: &Notification) {
        let Ok(permit) = self.showing.clone().try_acquire_owned() else {
            tracing::warn!("a desktop notification was skipped: earlier ones are still pending");
            return;
        };
        let (title, body) = n.desktop(self.config.with_text);
        tokio::spawn(async move {
            let _permit = permit;
            let mut notification = notify_rust::Notification::new();
            notification.appname("hush").summary(&title).body(&body);
            match tokio::time::timeout(MAX_RUN, notification.show_async()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "could not show a desktop notification"),
                Err(_) => tracing::warn!("the session bus did not take a desktop notification"),
            }
        });
    }

    /// Starts the command for `n` (skipped when [`MAX_RUNNING`] still run).
    fn run(&self, command_line: &str, n: Notification) {
        let Ok(permit) = self.running.clone().try_acquire_owned() else {
            tracing::warn!(
                running = MAX_RUNNING,
                "a notification was skipped: the notify command is still running for earlier ones"
            );
            return;
        };
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-c")
            .arg(command_line)
            .env("HUSH_KIND", n.kind)
            .env("HUSH_FROM", &n.from)
            .env("HUSH_CONVERSATION", &n.conversation)
            .env("HUSH_ID", &n.id)
            .env_remove("HUSH_TEXT")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        if self.config.with_text {
            command.env("HUSH_TEXT", &n.text);
        }
        tokio::spawn(async move {
            let _permit = permit;
            let run = async {
                let status = command.status().await?;
                Ok::<_, std::io::Error>(status)
            };
            match tokio::time::timeout(MAX_RUN, run).await {
                Ok(Ok(status)) if status.success() => {}
                Ok(Ok(status)) => tracing::warn!(%status, "the notify command failed"),
                Ok(Err(e)) => tracing::warn!(error = %e, "could not run the notify command"),
                Err(_) => tracing::warn!(
                    secs = MAX_RUN.as_secs(),
                    "the notify command ran too long and was stopped"
                ),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Status;

    fn message(outgoing: bool, text: &str) -> MessageView {
        MessageView {
            id: "01".into(),
            from: "bob\u{1b}[31m".into(),
            outgoing,
            text: text.into(),
            status: Status::Delivered,
            sent_at: String::new(),
            sent_at_ms: 0,
            file: None,
            kind: "message".into(),
            timer_secs: None,
            disappears_at: None,
        }
    }

    #[test]
    fn a_desktop_notification_names_the_writer_and_shows_text_only_when_asked() {
        let event = Event::GroupMessage {
            group: "team".into(),
            group_id: "g".into(),
            message: message(false, "<b>secret</b> & more"),
        };
        let n = Notification::of(&event).expect("a notification");
        let (title, body) = n.desktop(false);
        assert_eq!(title, "hush · bob\u{FFFD}[31m in team");
        assert_eq!(body, "new message");
        let (_, body) = n.desktop(true);
        assert_eq!(body, "&lt;b&gt;secret&lt;/b&gt; &amp; more");
    }

    #[test]
    fn only_what_others_wrote_notifies_and_escapes_become_harmless() {
        let incoming = Event::Message {
            contact: "bob".into(),
            message: message(false, "hi\u{1b}]0;title\u{7}\nthere"),
            keys_changed: false,
        };
        let n = Notification::of(&incoming).expect("a notification");
        assert_eq!(n.kind, "message");
        assert_eq!(n.from, "bob\u{FFFD}[31m");
        assert!(!n.text.chars().any(char::is_control), "{:?}", n.text);
        let ours = Event::Message {
            contact: "bob".into(),
            message: message(true, "mine"),
            keys_changed: false,
        };
        assert_eq!(Notification::of(&ours), None);
    }
}
