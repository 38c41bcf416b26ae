//! Check-ins: a member's heads over Olm to a random member after its op
//! set changed, which repair what the channel did not bring, back off
//! and stop in a settled group, and are skipped when a member told us our
//! own heads.

use super::channel::{
    channel_kinds, dave_joins_while_carol_is_deaf, friends_of_the_first, joined, run_counting_olm,
    run_for,
};
use super::*;
use crate::device::groups::channel::{CHECK_FIRST_MS, CHECK_LAST_MS, NEW_FOR_MS};

fn is_heads(payload: &Payload) -> bool {
    matches!(&payload.body, Body::Group(c) if matches!(c.kind, ControlKind::Heads(_)))
}

/// carol stays deaf to the topic from dave's join on, and the group goes
/// quiet (as a member outside every mesh, whose peers' queues drop what
/// she needs, would be): no heads she lacks ever reach her, so nothing on
/// the channel tells her she is behind. A check-in over Olm repairs it:
/// dave's (new to the group, he checks in within seconds; checked in with,
/// carol asks him back) or her own, a while after her op set last changed.
#[test]
fn a_member_deaf_to_a_quiet_channel_catches_up_by_checking_in() {
    let (mut net, id) = dave_joins_while_carol_is_deaf();
    let check_ins = run_counting_olm(&mut net, 3 * CHECK_FIRST_MS, is_heads);
    assert!(check_ins > 0, "members checked in");
    assert_eq!(joined(&net, 2, id), 4, "a check-in brought carol the join");
}

/// dave joins and is deaf to the topic from then on (as a new member
/// whose mesh has not formed yet), and erin is invited and joins after
/// him: nothing of it reaches dave on the channel. New to the group, he
/// checks in within seconds rather than after `CHECK_FIRST_MS`, and has
/// erin's invitation and join: a member that missed the others' joins no
/// longer holds up a group's setup for half a minute.
#[test]
fn a_new_member_deaf_to_the_channel_catches_up_within_seconds() {
    let mut net = Net::new(&["alice", "bob", "carol", "dave", "erin"], config());
    let id = friends_of_the_first(&mut net, 3);
    run_for(&mut net, NEW_FOR_MS + 10_000);
    net.invite_to_friends(0, 3, false);
    net.drive();
    net.join_friends(3);
    net.members[3].deaf = true;
    net.invite_to_friends(0, 4, false);
    net.drive();
    net.join_friends(4);
    assert_eq!(joined(&net, 0, id), 5, "erin joined");
    assert_eq!(joined(&net, 3, id), 4, "dave heard nothing of erin");
    // Past his first check-in (at most 1.5 × CHECK_NEW_MS after he
    // joined), well short of one after CHECK_FIRST_MS (at least half of it).
    run_for(&mut net, CHECK_FIRST_MS / 3);
    assert_eq!(
        joined(&net, 3, id),
        5,
        "dave checked in and has erin's join"
    );
}

/// Check-ins back off after the op set last changed and then stop: a
/// settled, quiet group costs no Olm messages.
#[test]
fn a_settled_quiet_group_stops_checking_in() {
    let mut net = Net::new(&["alice", "bob", "carol"], config());
    let id = friends_of_the_first(&mut net, 3);
    // The gaps double from CHECK_FIRST_MS to CHECK_LAST_MS (63.5 min in
    // all), each drawn between half and one and a half times its length.
    let early = run_counting_olm(&mut net, 3 * CHECK_LAST_MS, is_heads);
    assert!(early > 0, "members checked in after the group formed");
    let late = run_counting_olm(&mut net, CHECK_LAST_MS, is_heads);
    assert_eq!(late, 0, "nobody checks in once settled");
    for i in 0..3 {
        assert_eq!(joined(&net, i, id), 3);
    }
}

/// Check-ins (heads over Olm) sent while `ms` passed: (ms from now, by
/// whom).
fn check_ins_for(net: &mut Net, ms: u64) -> Vec<(u64, usize)> {
    let mut sent = Vec::new();
    for step in 1..=ms / 100 {
        net.advance(100);
        let now = std::cell::RefCell::new(Vec::new());
        net.drive_dropping(|from, _, payload| {
            if is_heads(payload) {
                now.borrow_mut().push(from);
            }
            false
        });
        sent.extend(now.into_inner().into_iter().map(|from| (step * 100, from)));
    }
    sent
}

/// alice, bob and carol in "friends", settled (and no longer new to its
/// channel); dave is invited and joins.
fn dave_joins_a_settled_group() -> (Net, GroupId) {
    let mut net = Net::new(&["alice", "bob", "carol", "dave"], config());
    let id = friends_of_the_first(&mut net, 3);
    run_for(&mut net, NEW_FOR_MS + 10_000);
    net.invite_to_friends(0, 3, false);
    net.drive();
    net.join_friends(3);
    (net, id)
}

/// dave joins a settled group. One member announces the new heads on the
/// channel, and the others, hearing their own heads, cancel theirs; they
/// used to check in over Olm all the same, 15–45 s later (each of them one
/// Olm message, and often a new connection, that could learn nothing).
/// Now a member told its own heads since its check-in was scheduled skips
/// it, and checks in at the one after (never two skipped in a row).
#[test]
fn members_told_their_own_heads_skip_one_check_in_not_two() {
    let (mut net, id) = dave_joins_a_settled_group();
    let since = net.published.len();
    // Old members' first check-in after a change comes 15–45 s after it.
    let first = check_ins_for(&mut net, CHECK_FIRST_MS * 3 / 2);
    let announcers: Vec<usize> = channel_kinds(&net, id, 0, since)
        .into_iter()
        .filter(|(_, k)| matches!(k, ControlKind::Heads(_)))
        .map(|(from, _)| from)
        .collect();
    assert!(!announcers.is_empty(), "the new heads were announced");
    let quiet: Vec<usize> = (0..3).filter(|i| !announcers.contains(i)).collect();
    assert!(
        !quiet.is_empty(),
        "the first announcement silenced the others"
    );
    for i in &quiet {
        assert!(
            !first.iter().any(|(_, from)| from == i),
            "member {i} heard its own heads announced and skipped its check-in: {first:?}"
        );
    }
    // The next gap is twice as long (30–90 s after the skipped one).
    let second = check_ins_for(&mut net, CHECK_FIRST_MS * 3);
    for i in &quiet {
        assert!(
            second.iter().any(|(_, from)| from == i),
            "member {i} checked in at the next one: {second:?}"
        );
    }
    for i in 0..4 {
        assert_eq!(joined(&net, i, id), 4);
    }
}

/// A member that keeps telling carol her own heads (as one standing
/// between her and the rest of the group could, to keep her from learning
/// what the others hold) delays her check-ins by a gap at most: she skips
/// one, never two in a row.
#[test]
fn a_member_repeating_our_heads_cannot_silence_our_check_ins() {
    let (mut net, id) = dave_joins_a_settled_group();
    let carol = net.members[2].key.id();
    let mut by_carol = 0;
    // Gaps of 30, 60 and 120 s (each drawn between half and one and a half
    // times its length): at least two of carol's check-ins fall due.
    for _ in 0..(CHECK_FIRST_MS * 4) / 5_000 {
        net.call(0, |book, ctx, _| book.ask_for_ops(ctx, id, carol, 0));
        by_carol += check_ins_for(&mut net, 5_000)
            .iter()
            .filter(|(_, from)| *from == 2)
            .count();
    }
    assert!(by_carol >= 1, "carol still checked in");
}

/// alice checks in with carol (her heads over Olm), and carol, deaf to the
/// topic, lacks one of them (dave's join): carol asks alice back with her
/// own heads and has it, without waiting for a check-in of her own.
#[test]
fn a_member_checked_in_with_asks_for_what_the_check_in_named() {
    let (mut net, id) = dave_joins_while_carol_is_deaf();
    let carol = net.members[2].key.id();
    net.call(0, |book, ctx, _| book.ask_for_ops(ctx, id, carol, 0));
    net.drive();
    assert_eq!(joined(&net, 2, id), 3, "alice's heads alone add nothing");
    run_for(&mut net, ASK_AFTER_MS + 1_000);
    assert_eq!(joined(&net, 2, id), 4, "carol asked alice back");
}
