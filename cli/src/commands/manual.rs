//! `hush man [--dir DIR]`: manual pages, generated from the same
//! definitions `--help` prints.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::args::Cli;

/// The local API's reference (protocol.md §8), for `hush-api(7)`.
const PROTOCOL: &str = include_str!("../../../docs/protocol.md");

/// Without `dir`: prints `hush(1)`. With it: writes one page per command
/// (`hush.1`, `hush-node-run.1`, …) and `hush-api.7` there and lists them.
pub fn man(dir: Option<&Path>) -> Result<()> {
    let Some(dir) = dir else {
        let mut out = std::io::stdout().lock();
        clap_mangen::Man::new(Cli::command()).render(&mut out)?;
        return out.flush().context("could not write the manual page");
    };
    std::fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("could not write the manual pages into {}", dir.display()))?;
    let api = dir.join("hush-api.7");
    std::fs::write(&api, api_page())
        .with_context(|| format!("could not write {}", api.display()))?;
    let mut pages: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("hush") && (n.ends_with(".1") || n.ends_with(".7")))
        .collect();
    pages.sort();
    for page in pages {
        println!("{}", dir.join(page).display());
    }
    Ok(())
}

/// `hush-api(7)`: the local API section of docs/protocol.md, as a page.
pub fn api_page() -> String {
    let section = PROTOCOL
        .split_once("\n## 8. ")
        .and_then(|(_, rest)| rest.split_once("\n## 9. ").map(|(s, _)| s))
        .unwrap_or("the local API is described in docs/protocol.md, section 8");
    let mut page = String::from(
        ".TH HUSH-API 7 \"\" \"hush\" \"hush manual\"\n\
         .SH NAME\n\
         hush-api \\- the hush node's local API (JSON-RPC 2.0 over a Unix socket)\n\
         .SH DESCRIPTION\n\
         Bots and other programs drive a running node (\\fBhush node run\\fR) \
         through \\fIHOME\\fR/hush.sock, as the \\fBhush\\fR command does. \
         What follows is section 8 of the wire protocol (docs/protocol.md).\n\
         .PP\n.nf\n",
    );
    page.push_str("8. ");
    for line in section.lines() {
        // roff: a backslash escapes; a line starting with . or ' is a request.
        let line = line.replace('\\', "\\e");
        if line.starts_with('.') || line.starts_with('\'') {
            page.push_str("\\&");
        }
        page.push_str(&line);
        page.push('\n');
    }
    page.push_str(".fi\n.SH SEE ALSO\n\\fBhush\\fR(1)\n");
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_page_is_written_for_every_command_and_the_api() {
        let dir = tempfile::tempdir().expect("temp dir");
        man(Some(dir.path())).expect("pages written");
        let hush = std::fs::read_to_string(dir.path().join("hush.1")).expect("hush.1");
        assert!(hush.contains("Exit status"), "exit codes in hush(1)");
        for path in crate::args::command_paths() {
            if path.last().is_some_and(|n| n == "help") {
                continue;
            }
            let page = dir.path().join(format!("hush-{}.1", path.join("-")));
            let text = std::fs::read_to_string(&page)
                .unwrap_or_else(|e| panic!("{}: {e}", page.display()));
            assert!(text.contains(".TH"), "{} is a manual page", page.display());
        }
        let api = std::fs::read_to_string(dir.path().join("hush-api.7")).expect("hush-api.7");
        for method in [
            "contact.add",
            "send",
            "group.send",
            "presence.share",
            "events.subscribe",
        ] {
            assert!(
                api.contains(&format!("`{method}`")),
                "{method} in hush-api(7)"
            );
        }
        assert!(
            !api.lines().any(|l| l.starts_with('.')
                && !l.starts_with(".TH")
                && ![".SH", ".PP", ".nf", ".fi"]
                    .iter()
                    .any(|r| l.starts_with(r))),
            "no protocol text read as a roff request"
        );
    }
}
