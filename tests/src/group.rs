//! Group steps the end-to-end tests share: a user's node driven through
//! the CLI (`hush group …`), waiting where a step takes the network a
//! moment.

use std::time::Duration;

use serde_json::Value;

use crate::{User, wait_for};

/// `group` (id or name) as `user`'s `group list` shows it.
pub fn group_view(user: &User, group: &str) -> Option<Value> {
    let list = user.json(&["group", "list", "--json"]);
    list.as_array()?
        .iter()
        .find(|g| g["id"] == group || g["name"] == group)
        .cloned()
}

/// Waits until `user` is `you` ("invited", "joined", …) in `group`.
pub fn wait_standing(user: &User, group: &str, you: &str) {
    wait_for(
        &format!("{} to be {you} in {group}", user.name),
        Duration::from_secs(40),
        || (group_view(user, group)?["you"] == you).then_some(()),
    );
}

/// Waits until `user` sees `n` members in `group`; the group's view.
pub fn wait_members(user: &User, group: &str, n: u64) -> Value {
    wait_for(
        &format!("{} to see {n} members in {group}", user.name),
        Duration::from_secs(40),
        || {
            let g = group_view(user, group)?;
            (g["members"].as_u64() == Some(n)).then_some(g)
        },
    )
}

/// Waits until `user` holds at least `n` messages of `group`; them.
pub fn wait_history(user: &User, group: &str, n: usize) -> Vec<(String, String)> {
    wait_for(
        &format!("{} to have {n} messages in {group}", user.name),
        Duration::from_secs(40),
        || {
            let h = user.group_history(group);
            (h.len() >= n).then_some(h)
        },
    )
}

/// `user` writes `text` to `group`; the message's id.
pub fn send(user: &User, group: &str, text: &str) -> String {
    let r = user.run(&["group", "send", group, text, "--json"]);
    assert!(r.ok(), "{} sends to {group}: {r:?}", user.name);
    r.json()["id"].as_str().expect("id").to_owned()
}

/// `user` creates a group named `name`; its id.
pub fn create(user: &User, name: &str) -> String {
    let r = user.run(&["group", "create", name]);
    assert!(r.ok(), "create: {r:?}");
    r.stdout.trim().to_owned()
}

/// `user` invites `who` (a contact's name) to `group`.
pub fn invite(user: &User, group: &str, who: &str, admin: bool) {
    let mut args = vec!["group", "invite", group, who];
    if admin {
        args.push("--admin");
    }
    let r = user.run(&args);
    assert!(r.ok(), "{} invites {who}: {r:?}", user.name);
}

/// `user`, once invited, joins `group`.
pub fn join(user: &User, group: &str) {
    wait_standing(user, group, "invited");
    let r = user.run(&["group", "join", group]);
    assert!(r.ok(), "{} joins: {r:?}", user.name);
}

/// Message `id` of `group` as `user`'s history shows it (GroupMessageView).
pub fn group_message(user: &User, group: &str, id: &str) -> Option<Value> {
    let list = user.json(&["group", "history", group, "--json"]);
    list.as_array()?.iter().find(|m| m["id"] == id).cloned()
}
