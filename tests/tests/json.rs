//! Every command a script would call takes `--json` and prints JSON that
//! parses (issue 20, item 2).

use std::time::Duration;

use hush_tests::{User, pair, wait_for};
use serde_json::Value;

/// Runs `hush ARGS… --json` and parses what it prints.
fn json(user: &User, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let run = user.run(&all);
    assert!(run.ok(), "hush {all:?} failed: {run:?}");
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("hush {all:?} printed no JSON ({e}): {:?}", run.stdout))
}

#[test]
fn every_command_prints_json_that_parses() {
    let fresh = tempfile::tempdir().expect("temp dir");
    let home = fresh.path().join("carol");
    let run = std::process::Command::new(hush_tests::hush_bin())
        .arg("--home")
        .arg(&home)
        .args(["init", "--name", "carol", "--json"])
        .output()
        .expect("run hush init");
    assert!(run.status.success(), "{run:?}");
    let init: Value = serde_json::from_slice(&run.stdout).expect("init --json");
    assert_eq!(init["name"], "carol");

    let (alice, bob) = pair();
    for args in [
        &["id"][..],
        &["status"],
        &["contact", "list"],
        &["contact", "receipts", "bob", "on"],
        &[
            "contact",
            "set",
            "bob",
            "--receipts",
            "on",
            "--share-presence",
            "on",
        ],
        &["presence", "bob"],
        &["contact", "verify", "bob"],
        &["contact", "unverify", "bob"],
        &["contact", "block", "bob"],
        &["contact", "unblock", "bob"],
    ] {
        json(&alice, args);
    }
    let card = bob.card();
    assert_eq!(
        json(&alice, &["contact", "update", "bob", &card])["name"],
        "bob"
    );
    let sent = json(&alice, &["send", "bob", "hello"]);
    let id = sent["id"].as_str().expect("id").to_owned();
    alice.wait_status("bob", &id, "delivered");
    assert!(json(&alice, &["history", "bob"]).is_array());
    assert_eq!(json(&bob, &["read", "alice"])["marked"], 1);

    let group = json(&alice, &["group", "create", "g"]);
    let gid = group["id"].as_str().expect("group id").to_owned();
    json(&alice, &["group", "invite", &gid, "bob"]);
    wait_for("bob's invitation", Duration::from_secs(30), || {
        bob.run(&["group", "join", &gid, "--json"])
            .ok()
            .then_some(())
    });
    // alice can promote bob once his join reached her.
    wait_for("alice to see bob joined", Duration::from_secs(30), || {
        let members = json(&alice, &["group", "members", &gid]);
        members["members"]
            .as_array()?
            .iter()
            .any(|m| m["name"] == "bob" && m["status"] == "joined")
            .then_some(())
    });
    json(&alice, &["group", "promote", &gid, "bob"]);
    json(&bob, &["group", "send", &gid, "hi all"]);
    assert!(json(&bob, &["group", "history", &gid]).is_array());
    assert!(json(&bob, &["group", "list"]).is_array());
    json(&bob, &["group", "members", &gid]);
    json(&alice, &["group", "read", &gid]);
    json(&alice, &["group", "remove", &gid, "bob"]);
    json(&bob, &["group", "leave", &gid]);
    assert_eq!(json(&alice, &["contact", "remove", "bob"])["name"], "bob");
}
