//! What a member lacking ops says on the group's channel: its heads while
//! they are few, else which ops it lacks (a want), each lack about once;
//! and what a member flooding heads or wants costs the others.

use super::channel::{
    channel_kinds, friends_of_the_first, is_ops, joined, publish_as, run_counting_olm, run_for,
};
use super::*;
use crate::device::groups::channel::{ANSWER_MIN_GAP_MS, HEADS_MIN_GAP_MS, NEW_FOR_MS, same_heads};

/// As in a group whose heads are past what a want names (see
/// `LACK_HEADS_MAX`), here from the first head: a lacking member wants.
fn wanting() -> GroupConfig {
    GroupConfig {
        lack_heads_max: 0,
        ..config()
    }
}

/// While many join at once, members miss different joins: here eight
/// join at once, and m3–m7 each miss m8's join and one other (m3 misses
/// m9's, m4 m10's, …), so their heads differ. m0 announces its heads, and
/// all five learn what they lack. Each used to announce its own heads for
/// it, every announcement to every member and naming every head it holds
/// (at 300 members forming, 870–1,240 announcements of 16 KiB, three
/// quarters of setup's traffic). A lacking member with many heads now
/// says which ops it lacks, and leaves out those another member has just
/// said it lacks (their answer reaches it too): each lack said about once.
#[test]
fn lacks_many_members_share_are_said_once_not_by_every_member() {
    let names: Vec<&'static str> = (0..16)
        .map(|i| &*Box::leak(format!("m{i}").into_boxed_str()))
        .collect();
    let mut net = Net::new(&names, wanting());
    let id = friends_of_the_first(&mut net, 8);
    for who in 8..16 {
        net.invite_to_friends(0, who, false);
        net.drive();
    }
    run_for(&mut net, NEW_FOR_MS + 10_000);
    // The eight join at once: none hears another's join.
    let (lacking, joiners) = (3..8, 8..16);
    for i in joiners.clone().chain(lacking.clone()) {
        net.members[i].deaf = true;
    }
    net.join_friends(8);
    for (k, i) in lacking.clone().enumerate() {
        for j in lacking.clone().filter(|j| *j != i) {
            net.members[j].deaf = false;
        }
        net.members[i].deaf = true;
        net.join_friends(9 + k);
    }
    for i in lacking.clone() {
        net.members[i].deaf = false;
    }
    for who in 14..16 {
        net.join_friends(who);
    }
    for i in joiners.clone() {
        net.members[i].deaf = false;
    }
    // Their announcements after the joins they got go unanswered.
    for i in lacking.clone() {
        net.members[i].deaf = true;
    }
    run_for(&mut net, 12_000);
    for i in lacking.clone() {
        net.members[i].deaf = false;
        assert_eq!(joined(&net, i, id), 14, "m{i} missed two joins");
    }
    let since = net.published.len();
    let heads = net.heads_of(0, id);
    publish_as(&mut net, 0, id, 0, ControlKind::Heads(heads.clone()));
    let olm_ops = run_counting_olm(&mut net, 8_000, is_ops);
    // What the lacking members said while they lacked (not their heads
    // once they hold every op, as any member announces after a change).
    let said: Vec<(usize, usize)> = channel_kinds(&net, id, 0, since)
        .into_iter()
        .filter(|(from, _)| lacking.contains(from))
        .filter_map(|(from, k)| match k {
            ControlKind::Heads(ops) if !same_heads(&ops, &heads) => Some((from, ops.len())),
            ControlKind::Want(ops) => Some((from, ops.len())),
            _ => None,
        })
        .collect();
    let named: usize = said.iter().map(|(_, n)| n).sum();
    // Six ops lacked in all (m8's join by five members, one other each).
    assert!(
        named <= 8,
        "ops named by the lacking members, (member, ops): {said:?}"
    );
    for i in 0..16 {
        assert_eq!(joined(&net, i, id), 16, "m{i} sees all sixteen joined");
    }
    assert_eq!(olm_ops, 0, "repaired on the channel, not over Olm");
}

/// Four windows of `gap` in which mallory (the fifth of five members)
/// publishes `kind(n)` on the channel ten times a second, then quiet until
/// the last window ends; how many messages of the kind `counted` tells
/// each other member published meanwhile, and the windows.
fn flooded(
    config: GroupConfig,
    gap: u64,
    kind: impl Fn(&Net, GroupId, usize) -> ControlKind,
    counted: fn(&ControlKind) -> bool,
) -> ([usize; 4], usize) {
    let names = ["alice", "bob", "carol", "dave", "mallory"];
    let mut net = Net::new(&names, config);
    let id = net.group_of_all(0);
    run_for(&mut net, 10_000);
    let since = net.published.len();
    let windows = 4;
    for n in 0..(windows * gap / 100) as usize {
        let kind = kind(&net, id, n);
        publish_as(&mut net, 4, id, 4, kind);
        net.advance(100);
        net.drive();
    }
    run_for(&mut net, gap);
    let mut per_member = [0usize; 4];
    for (from, _) in channel_kinds(&net, id, 0, since)
        .into_iter()
        .filter(|(from, k)| *from < 4 && counted(k))
    {
        per_member[from] += 1;
    }
    (per_member, windows as usize)
}

/// Attack: a member floods the channel with heads nobody holds, so that
/// every other member says what it lacks (N messages for each of hers).
/// Each member says so at most once per window, however many come, with
/// its heads or with a want.
#[test]
fn junk_heads_flooding_the_channel_cost_each_member_one_announcement_per_window() {
    let junk = |_: &Net, _: GroupId, n: usize| {
        let junk = [(n % 256) as u8, (n / 256) as u8, 0xee, 0xee].repeat(8);
        ControlKind::Heads(vec![junk.try_into().expect("32 bytes")])
    };
    let lacking = |k: &ControlKind| matches!(k, ControlKind::Heads(_) | ControlKind::Want(_));
    for config in [config(), wanting()] {
        let (per_member, windows) = flooded(config, HEADS_MIN_GAP_MS, junk, lacking);
        assert!(per_member.iter().all(|n| *n > 0), "each said it lacks");
        assert!(
            per_member.iter().all(|n| *n <= windows + 1),
            "announcements per member over {windows} windows of junk heads: {per_member:?}"
        );
    }
}

/// Attack: a member floods the channel with wants of ops every member
/// holds (the whole op set, ten times a second), so that the members
/// publish the op set again and again. Only the first member in turn for
/// a want answers it, and each member at most once per window.
#[test]
fn wants_flooding_the_channel_cost_each_member_one_answer_per_window() {
    let everything = |net: &Net, id: GroupId, _: usize| {
        let ops = net.members[0].book.group(&id).unwrap().ops();
        ControlKind::Want(ops.ops().map(|op| op.hash()).collect())
    };
    let answers = |k: &ControlKind| matches!(k, ControlKind::Ops(_));
    let (per_member, windows) = flooded(config(), ANSWER_MIN_GAP_MS, everything, answers);
    assert!(
        per_member.iter().sum::<usize>() > 0,
        "the wants were answered"
    );
    assert!(
        per_member.iter().all(|n| *n <= windows + 1),
        "answers per member over {windows} windows of wants: {per_member:?}"
    );
}
