//! Group ops, state, control and history codecs.

use super::*;
use crate::card::ContactCard;
use crate::codec::Wire;
use crate::ids::{DeviceId, GroupId, MessageId};
use crate::keys::{AccountKey, DeviceKeys, DeviceList};

mod control;
mod fold;

struct User {
    key: AccountKey,
    card: ContactCard,
}

fn user(seed: u8) -> User {
    let key = AccountKey::from_seed([seed; 32]);
    let device = DeviceKeys {
        device_id: DeviceId([seed; 32]),
        olm_ed25519: [seed; 32],
        olm_curve25519: [seed; 32],
        mailbox_key: [seed; 32],
    };
    let list = DeviceList::sign(&key, 1, vec![device]);
    let card = ContactCard::sign(&key, format!("u{seed}"), list, vec![], vec![]);
    User { key, card }
}

fn op(u: &User, group: GroupId, at: u128, parents: Vec<OpHash>, action: Action) -> GroupOp {
    GroupOp::sign(&u.key, group, MessageId(at), parents, action)
}

fn create(u: &User) -> (GroupId, GroupOp) {
    create_with(u, [7; 16], "friends", 3)
}

fn create_with(u: &User, nonce: [u8; 16], name: &str, member_limit: u32) -> (GroupId, GroupOp) {
    let id = GroupId::derive(&u.key.id(), &nonce);
    let op = op(
        u,
        id,
        1,
        vec![],
        Action::Create {
            nonce,
            name: name.into(),
            member_limit,
            card: u.card.clone(),
        },
    );
    (id, op)
}

#[test]
fn ops_round_trip_and_verify() {
    let alice = user(1);
    let (id, create) = create(&alice);
    assert_eq!(GroupOp::from_bytes(&create.to_bytes()).unwrap(), create);
    create.verify().unwrap();
    let mut forged = create.clone();
    forged.group = GroupId([0; 32]);
    assert!(forged.verify().is_err());
    let control = GroupControl {
        group: id,
        kind: ControlKind::Ops(vec![create]),
    };
    assert_eq!(
        GroupControl::from_bytes(&control.to_bytes()).unwrap(),
        control
    );
}

#[test]
fn fold_applies_rules_and_ignores_what_is_not_allowed() {
    let (alice, bob, carol) = (user(1), user(2), user(3));
    let (id, c) = create(&alice);
    let invite_bob = op(
        &alice,
        id,
        2,
        vec![c.hash()],
        Action::Invite {
            role: Role::Member,
            card: bob.card.clone(),
        },
    );
    let bob_joins = op(&bob, id, 3, vec![invite_bob.hash()], Action::Join);
    // bob is no admin: his invitation of carol is ignored.
    let bob_invites = op(
        &bob,
        id,
        4,
        vec![bob_joins.hash()],
        Action::Invite {
            role: Role::Member,
            card: carol.card.clone(),
        },
    );
    // carol joins without an invitation: ignored.
    let carol_joins = op(&carol, id, 5, vec![], Action::Join);
    let state = GroupState::fold(
        id,
        [&c, &invite_bob, &bob_joins, &bob_invites, &carol_joins],
    );
    assert_eq!(state.version, 3);
    assert!(state.is_joined(&bob.key.id()));
    assert!(!state.members.contains_key(&carol.key.id()));
    // Order of arrival does not matter.
    let again = GroupState::fold(
        id,
        [&carol_joins, &bob_invites, &bob_joins, &c, &invite_bob],
    );
    assert_eq!(state, again);

    let remove = op(
        &alice,
        id,
        6,
        vec![bob_joins.hash()],
        Action::Remove {
            account: bob.key.id(),
        },
    );
    let state = GroupState::fold(id, [&c, &invite_bob, &bob_joins, &remove]);
    assert!(!state.members.contains_key(&bob.key.id()));
    assert!(state.removed.contains(&bob.key.id()));
    assert_eq!(
        state.check(&bob.key.id(), &Action::Join),
        Err(GroupError::NotInvited)
    );
}

#[test]
fn concurrent_invites_converge_and_the_limit_holds() {
    let (alice, bob, carol, dave) = (user(1), user(2), user(3), user(4));
    let (id, c) = create(&alice);
    let invite_bob = op(
        &alice,
        id,
        2,
        vec![c.hash()],
        Action::Invite {
            role: Role::Admin,
            card: bob.card.clone(),
        },
    );
    let bob_joins = op(&bob, id, 3, vec![invite_bob.hash()], Action::Join);
    let base = bob_joins.hash();
    // Both admins invite at once; the limit is 3, so one invitation wins,
    // the same one everywhere.
    let a = op(
        &alice,
        id,
        10,
        vec![base],
        Action::Invite {
            role: Role::Member,
            card: carol.card.clone(),
        },
    );
    let b = op(
        &bob,
        id,
        10,
        vec![base],
        Action::Invite {
            role: Role::Member,
            card: dave.card.clone(),
        },
    );
    let mut one = OpSet::default();
    let mut two = OpSet::default();
    for o in [&c, &invite_bob, &bob_joins, &a, &b] {
        one.insert(o.clone());
    }
    for o in [&b, &bob_joins, &a, &c, &invite_bob] {
        two.insert(o.clone());
    }
    let (s1, s2) = (one.fold(id), two.fold(id));
    assert_eq!(s1, s2);
    assert_eq!(s1.members.len(), 3);
    // What bob had not seen when he invited dave: alice's invite.
    let unseen: Vec<OpHash> = one.unseen_by(&b).iter().map(|o| o.hash()).collect();
    assert_eq!(unseen, vec![a.hash()]);
    assert_eq!(one.heads(id, &alice.key.id()).len(), 2);
}

#[test]
fn history_messages_round_trip() {
    for r in [
        HistoryRequest::Keep { topic: "t".into() },
        HistoryRequest::Fetch {
            topic: "t".into(),
            after: 9,
            limit: 3,
        },
    ] {
        assert_eq!(HistoryRequest::from_bytes(&r.to_bytes()).unwrap(), r);
    }
    for r in [
        HistoryResponse::Keeping,
        HistoryResponse::Page {
            items: vec![(1, vec![1, 2])],
            more: true,
        },
        HistoryResponse::Refused {
            reason: "full".into(),
        },
    ] {
        assert_eq!(HistoryResponse::from_bytes(&r.to_bytes()).unwrap(), r);
    }
}

/// A disappearing message's end is part of what the publish key signs: a
/// relay or member that moves it breaks the signature.
#[test]
fn a_group_messages_end_round_trips_and_is_signed() {
    let key = crate::PublishKey::from_secret(&[4; 32]);
    let m = key.seal_until(
        crate::SessionId([3; 32]),
        vec![1, 2, 3],
        Some(1_800_000_000_000),
    );
    let bytes = m.to_bytes();
    assert_eq!(bytes[0], 5, "version 5 carries an end and a tag");
    assert_eq!(GroupMessage::from_bytes(&bytes).unwrap(), m);
    let public = crate::TopicKey::parse(&key.topic()).unwrap();
    assert!(public.verify(&m));
    let mut moved = m.clone();
    moved.expires_at_ms = Some(1_900_000_000_000);
    assert!(!public.verify(&moved));
    let mut dropped = m;
    dropped.expires_at_ms = None;
    assert!(!public.verify(&dropped));
    // Without an end it is version 4.
    let plain = key.seal(crate::SessionId([3; 32]), vec![1]);
    assert_eq!(plain.to_bytes()[0], 4);
}

/// A message as published before the tag (version 2, or 3 with an end)
/// is still read: decoded without a tag, and checked by its signature.
#[test]
fn an_untagged_message_of_an_older_version_is_still_read() {
    let key = crate::PublishKey::from_secret(&[4; 32]);
    for end in [None, Some(1_800_000_000_000)] {
        let mut old = GroupMessage {
            tag: None,
            ..key.seal_until(crate::SessionId([3; 32]), vec![1, 2, 3], end)
        };
        old.signature = ed25519_dalek::Signer::sign(
            &ed25519_dalek::SigningKey::from_bytes(&[4; 32]),
            &publish::signed_bytes(&old),
        )
        .to_bytes();
        let bytes = old.to_bytes();
        assert_eq!(bytes[0], if end.is_some() { 3 } else { 2 });
        let decoded = GroupMessage::from_bytes(&bytes).unwrap();
        assert_eq!(decoded, old);
        assert!(key.is_authentic(&decoded) && key.public().verify(&decoded));
        let mut altered = decoded;
        altered.ciphertext[0] ^= 1;
        assert!(!key.is_authentic(&altered));
    }
}

/// A stranger strips a message's tag to have members check the signature
/// instead (or to pass a version 2 reader): the version byte that says a
/// tag follows is signed, so the stripped message fails both checks.
#[test]
fn a_tag_stripped_to_pass_as_an_older_message_is_refused() {
    let key = crate::PublishKey::from_secret(&[4; 32]);
    let m = key.seal(crate::SessionId([3; 32]), vec![1, 2, 3]);
    let stripped = GroupMessage { tag: None, ..m };
    let bytes = stripped.to_bytes();
    assert_eq!(bytes[0], 2, "encoded as version 2");
    let decoded = GroupMessage::from_bytes(&bytes).unwrap();
    assert!(!key.is_authentic(&decoded));
    assert!(!key.public().verify(&decoded));
    // Nor does a tagged message decode with its tag cut off.
    let m = key.seal(crate::SessionId([3; 32]), vec![1, 2, 3]);
    let bytes = m.to_bytes();
    assert!(GroupMessage::from_bytes(&bytes[..bytes.len() - 32]).is_err());
}

/// A stranger keeps a real message's tag and changes what it covers: the
/// ciphertext, the end, or the signature (a new message id for the same
/// Megolm message, which relays would refuse and members forward). The
/// tag covers all of it.
#[test]
fn a_real_tag_over_altered_bytes_or_a_swapped_signature_is_refused() {
    let key = crate::PublishKey::from_secret(&[4; 32]);
    let m = key.seal(crate::SessionId([3; 32]), vec![1, 2, 3]);
    assert!(key.is_authentic(&m));
    let mut altered = m.clone();
    altered.ciphertext[0] ^= 1;
    let mut moved = m.clone();
    moved.expires_at_ms = Some(1);
    let mut resession = m.clone();
    resession.session.0[0] ^= 1;
    let mut swapped = m.clone();
    swapped.signature[0] ^= 1;
    let other = key.seal(crate::SessionId([3; 32]), vec![9]);
    let mut borrowed = m.clone();
    borrowed.signature = other.signature;
    let mut retagged = m.clone();
    retagged.tag = other.tag;
    let mut zeroed = m.clone();
    zeroed.tag = Some([0; 32]);
    for (what, forged) in [
        ("ciphertext", altered),
        ("end", moved),
        ("session", resession),
        ("signature", swapped),
        ("borrowed signature", borrowed),
        ("borrowed tag", retagged),
        ("zero tag", zeroed),
    ] {
        assert!(!key.is_authentic(&forged), "{what}");
    }
    // A stranger's own key makes a tag of its own, not ours.
    let forger = crate::PublishKey::from_secret(&[5; 32]);
    let forged = forger.seal(m.session, m.ciphertext.clone());
    assert!(!key.is_authentic(&forged));
}

/// What the tag does not cover: a member (who holds the secret) can make
/// a good tag over a bad signature. Members accept it; relays check the
/// signature and refuse it, so it never enters a topic's history.
#[test]
fn a_members_good_tag_over_a_bad_signature_passes_members_and_no_relay() {
    let key = crate::PublishKey::from_secret(&[4; 32]);
    let mut m = key.seal(crate::SessionId([3; 32]), vec![1, 2, 3]);
    m.signature = [7; 64];
    m.tag = Some(key.tag(&m));
    assert!(key.is_authentic(&m));
    assert!(!key.public().verify(&m));
}

#[test]
fn group_message_round_trips_and_verifies_only_for_its_topic() {
    let key = crate::PublishKey::from_secret(&[4; 32]);
    let m = key.seal(crate::SessionId([3; 32]), vec![1, 2, 3]);
    assert_eq!(GroupMessage::from_bytes(&m.to_bytes()).unwrap(), m);
    assert!(GroupMessage::from_bytes(&[2, 2]).is_err());
    let topic = key.topic();
    assert_eq!(topic.len(), crate::TOPIC_PREFIX.len() + 64);
    assert!(topic.len() <= crate::MAX_TOPIC_LEN);
    let public = crate::TopicKey::parse(&topic).unwrap();
    assert!(public.verify(&m));
    let other = crate::PublishKey::from_secret(&[5; 32]).public();
    assert!(!other.verify(&m));
    let mut tampered = m.clone();
    tampered.ciphertext[0] ^= 1;
    assert!(!public.verify(&tampered));
    for bad in [
        "",
        "/hush/group/1/00",
        &topic[..topic.len() - 2],
        &topic.replace('/', "_"),
    ] {
        assert!(crate::TopicKey::parse(bad).is_none(), "{bad}");
    }
}

/// A member checks an untagged message by signing it again ([`PublishKey::signed`]):
/// whatever it accepts, `verify_strict` accepts, and whatever a forger
/// makes without the secret is refused as a relay refuses it.
#[test]
fn a_forged_or_altered_group_message_is_refused_by_a_member_as_by_a_relay() {
    let key = crate::PublishKey::from_secret(&[4; 32]);
    let public = key.public();
    let m = key.seal(crate::SessionId([3; 32]), vec![1, 2, 3]);
    assert!(key.signed(&m) && public.verify(&m));

    let forger = crate::PublishKey::from_secret(&[5; 32]);
    let mut forged = forger.seal(m.session, m.ciphertext.clone());
    assert!(!key.signed(&forged) && !public.verify(&forged));
    forged.signature = [0; 64];
    assert!(!key.signed(&forged) && !public.verify(&forged));

    let mut altered = m.clone();
    altered.ciphertext[0] ^= 1;
    assert!(!key.signed(&altered) && !public.verify(&altered));
    let mut moved = m.clone();
    moved.expires_at_ms = Some(1);
    assert!(!key.signed(&moved) && !public.verify(&moved));

    // `s + ℓ`: the same point, a signature `verify_strict` refuses as
    // malleable; the member must too (it differs from ours).
    let mut malleable = m.clone();
    let mut carry = 0u16;
    for (i, l) in ELL.iter().enumerate() {
        let sum = u16::from(malleable.signature[32 + i]) + u16::from(*l) + carry;
        malleable.signature[32 + i] = sum as u8;
        carry = sum >> 8;
    }
    assert!(!key.signed(&malleable) && !public.verify(&malleable));
}

/// The order of Ed25519's base point, little-endian.
const ELL: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// RFC 8032 lets a signer choose its nonce another way: a second
/// implementation's valid signature differs from the one the member makes
/// again, and is still accepted (checked as a relay checks it).
#[test]
fn a_valid_signature_made_with_another_nonce_is_accepted_by_a_member() {
    use ed25519_dalek::Digest;
    use ed25519_dalek::hazmat::{ExpandedSecretKey, raw_sign};
    let secret = [4; 32];
    let key = crate::PublishKey::from_secret(&secret);
    let m = key.seal(crate::SessionId([3; 32]), vec![1, 2, 3]);
    let mut expanded: [u8; 64] = ed25519_dalek::Sha512::digest(secret).into();
    expanded[32..].fill(9);
    let other_nonce = ExpandedSecretKey::from_bytes(&expanded);
    let signing = ed25519_dalek::SigningKey::from_bytes(&secret);
    let mut other = m.clone();
    other.signature = raw_sign::<ed25519_dalek::Sha512>(
        &other_nonce,
        &publish::signed_bytes(&other),
        &signing.verifying_key(),
    )
    .to_bytes();
    assert_ne!(other.signature, m.signature);
    assert!(key.public().verify(&other));
    assert!(key.signed(&other));
}

/// A group's history with concurrent and conflicting changes: invites by
/// two admins at once (past the member limit), a removal racing a join, a
/// promotion, a leave, and an op by someone removed.
/// How many ops [`eventful_history`] makes.
const EVENTFUL_OPS: usize = 13;

fn eventful_history() -> (GroupId, Vec<GroupOp>) {
    let (alice, bob, carol, dave, erin) = (user(1), user(2), user(3), user(4), user(5));
    let (id, c) = create(&alice);
    let invite = |by: &User, at, parents: Vec<OpHash>, who: &User, role| {
        op(
            by,
            id,
            at,
            parents,
            Action::Invite {
                role,
                card: who.card.clone(),
            },
        )
    };
    let invite_bob = invite(&alice, 2, vec![c.hash()], &bob, Role::Admin);
    let bob_joins = op(&bob, id, 3, vec![invite_bob.hash()], Action::Join);
    let base = bob_joins.hash();
    let alice_invites_carol = invite(&alice, 10, vec![base], &carol, Role::Member);
    let bob_invites_dave = invite(&bob, 10, vec![base], &dave, Role::Member);
    let carol_joins = op(
        &carol,
        id,
        11,
        vec![alice_invites_carol.hash()],
        Action::Join,
    );
    let dave_joins = op(&dave, id, 11, vec![bob_invites_dave.hash()], Action::Join);
    let bob_removes_carol = op(
        &bob,
        id,
        12,
        vec![carol_joins.hash()],
        Action::Remove {
            account: carol.key.id(),
        },
    );
    let carol_invites_erin = invite(&carol, 13, vec![carol_joins.hash()], &erin, Role::Member);
    let alice_promotes_dave = op(
        &alice,
        id,
        14,
        vec![dave_joins.hash()],
        Action::Promote {
            account: dave.key.id(),
        },
    );
    let dave_leaves = op(
        &dave,
        id,
        15,
        vec![alice_promotes_dave.hash()],
        Action::Leave,
    );
    // bob links a device, and a replay of an older list comes concurrently.
    let bob_links = op(
        &bob,
        id,
        16,
        vec![bob_joins.hash()],
        Action::Card {
            card: card_with_devices(&bob, 1, 30),
        },
    );
    let bob_stale = op(
        &bob,
        id,
        16,
        vec![bob_joins.hash()],
        Action::Card {
            card: card_with_devices(&bob, 2, 20),
        },
    );
    let ops = vec![
        c,
        invite_bob,
        bob_joins,
        bob_links,
        bob_stale,
        alice_invites_carol,
        bob_invites_dave,
        carol_joins,
        dave_joins,
        bob_removes_carol,
        carol_invites_erin,
        alice_promotes_dave,
        dave_leaves,
    ];
    (id, ops)
}

/// A history of `n` members, each invited after the last joined: every
/// op names the one before (what members make one change at a time).
fn linear_history(n: u8) -> (GroupId, Vec<GroupOp>) {
    let alice = user(1);
    let nonce = [8; 16];
    let id = GroupId::derive(&alice.key.id(), &nonce);
    let create = Action::Create {
        nonce,
        name: "many".into(),
        member_limit: 100,
        card: alice.card.clone(),
    };
    let c = op(&alice, id, 1, vec![], create);
    let mut head = c.hash();
    let mut ops = vec![c];
    let mut at = 2;
    for seed in 2..2 + n {
        let member = user(seed);
        let invite = op(
            &alice,
            id,
            at,
            vec![head],
            Action::Invite {
                role: Role::Member,
                card: member.card.clone(),
            },
        );
        let join = op(&member, id, at + 1, vec![invite.hash()], Action::Join);
        head = join.hash();
        at += 2;
        ops.extend([invite, join]);
    }
    (id, ops)
}

/// Whether an op that comes again is held is found by its signature, and
/// only the very op counts: one that borrows a held op's signature for
/// other content is not held (it would fail verification); an op dropped
/// as idle is held no more.
#[test]
fn an_op_is_held_only_as_signed_not_by_its_signature_alone() {
    let (id, ops) = linear_history(3);
    let mut set = OpSet::default();
    for o in &ops {
        set.insert(o.clone());
    }
    assert!(ops.iter().all(|o| set.holds(o)));
    let mut borrowed = ops[1].clone();
    borrowed.at = MessageId(borrowed.at.0 + 1);
    assert!(!set.holds(&borrowed));
    let stranger = op(&user(40), id, 99, vec![ops[2].hash()], Action::Leave);
    assert!(!set.holds(&stranger));
    set.insert(stranger.clone());
    assert!(set.holds(&stranger));
    assert_eq!(set.drop_idle(&[stranger.hash()]), [stranger.hash()]);
    assert!(!set.holds(&stranger));
    assert!(ops.iter().all(|o| set.holds(o)));
}

/// alice creates (limit 10); bob, then carol, are invited as admins and
/// join; dave is invited as a member and joins. Returns the ops in order.
fn three_admins_and_a_member() -> (GroupId, [User; 4], Vec<GroupOp>) {
    let (alice, bob, carol, dave) = (user(1), user(2), user(3), user(4));
    let (id, c) = create_with(&alice, [9; 16], "club", 10);
    let mut ops = vec![c];
    let mut at = 1;
    for (who, role) in [
        (&bob, Role::Admin),
        (&carol, Role::Admin),
        (&dave, Role::Member),
    ] {
        at += 1;
        let invite = op(
            &alice,
            id,
            at,
            vec![ops.last().unwrap().hash()],
            Action::Invite {
                role,
                card: who.card.clone(),
            },
        );
        at += 1;
        let join = op(who, id, at, vec![invite.hash()], Action::Join);
        ops.extend([invite, join]);
    }
    (id, [alice, bob, carol, dave], ops)
}

/// Attack (issue 13, item 1): an admin removed by another signs, after the
/// fact, ops dated before its removal and naming only what it knew before
/// it: removing the admin who removed it, and a member. Folded by date
/// alone, its removal of the remover came first and undid its own removal.
#[test]
fn removed_admin_backdating_ops_before_its_removal_changes_nothing() {
    let (id, [_alice, bob, carol, dave], mut ops) = three_admins_and_a_member();
    let known = ops.last().unwrap().hash();
    let removal = op(
        &bob,
        id,
        20,
        vec![known],
        Action::Remove {
            account: carol.key.id(),
        },
    );
    ops.push(removal);
    // carol, removed, pretends she had not seen it.
    let revenge = op(
        &carol,
        id,
        10,
        vec![known],
        Action::Remove {
            account: bob.key.id(),
        },
    );
    let spite = op(
        &carol,
        id,
        11,
        vec![revenge.hash()],
        Action::Remove {
            account: dave.key.id(),
        },
    );
    ops.extend([revenge, spite]);
    let state = GroupState::fold(id, &ops);
    assert!(state.is_admin(&bob.key.id()), "the remover stays admin");
    assert!(state.removed.contains(&carol.key.id()));
    assert!(!state.members.contains_key(&carol.key.id()));
    assert!(
        state.is_joined(&dave.key.id()),
        "her backdated removal is void"
    );
}

/// Attack (issue 13, item 1): two admins remove each other at once. The
/// senior one (made admin first) holds, whatever the dates say.
#[test]
fn a_junior_admin_cannot_remove_a_senior_one_even_concurrently() {
    let (id, [_alice, bob, carol, _dave], mut ops) = three_admins_and_a_member();
    let known = ops.last().unwrap().hash();
    let by_bob = op(
        &bob,
        id,
        30,
        vec![known],
        Action::Remove {
            account: carol.key.id(),
        },
    );
    let by_carol = op(
        &carol,
        id,
        12,
        vec![known],
        Action::Remove {
            account: bob.key.id(),
        },
    );
    ops.extend([by_bob, by_carol]);
    let state = GroupState::fold(id, &ops);
    assert!(state.is_admin(&bob.key.id()));
    assert!(!state.members.contains_key(&carol.key.id()));
    let alone = GroupState::fold(id, ops.iter().take(7).chain(ops.last()));
    assert!(
        alone.is_admin(&bob.key.id()),
        "a junior's removal of a senior is refused"
    );
}

/// Attack (issue 13, item 1): an op dated before its own parent (to sort
/// before something its author saw) takes no part, nor does anything built
/// on it.
#[test]
fn an_op_dated_before_its_parent_takes_no_part() {
    let (id, [_alice, bob, _carol, dave], mut ops) = three_admins_and_a_member();
    let known = ops.last().unwrap().hash();
    let backdated = op(
        &bob,
        id,
        2,
        vec![known],
        Action::Remove {
            account: dave.key.id(),
        },
    );
    ops.push(backdated);
    let state = GroupState::fold(id, &ops);
    assert!(state.is_joined(&dave.key.id()));
    assert_eq!(state.idle.get(&bob.key.id()), Some(&1));
}

/// Attack (issue 13, item 1): a member signs admin ops dated far ahead,
/// before anyone made it admin, so they take effect the moment it is
/// promoted. An op counts only if it descends from the op that gave its
/// author the role.
#[test]
fn admin_ops_signed_before_the_author_was_promoted_take_no_effect() {
    let (id, [alice, bob, _carol, dave], mut ops) = three_admins_and_a_member();
    let known = ops.last().unwrap().hash();
    let presigned = op(
        &dave,
        id,
        1_000,
        vec![known],
        Action::Remove {
            account: bob.key.id(),
        },
    );
    let promote = op(
        &alice,
        id,
        50,
        vec![known],
        Action::Promote {
            account: dave.key.id(),
        },
    );
    ops.extend([presigned, promote.clone()]);
    let state = GroupState::fold(id, &ops);
    assert!(state.is_admin(&dave.key.id()));
    assert!(state.is_joined(&bob.key.id()), "the presigned op is void");
    // Once promoted, dave's own ops count.
    let now = op(
        &dave,
        id,
        60,
        vec![promote.hash()],
        Action::Invite {
            role: Role::Member,
            card: user(5).card,
        },
    );
    ops.push(now);
    assert!(
        GroupState::fold(id, &ops)
            .members
            .contains_key(&user(5).key.id())
    );
}

/// `u`'s card listing its first device and `extra` more, issued at `at`.
fn card_with_devices(u: &User, extra: u8, at: u64) -> ContactCard {
    let mut devices = u.card.device_list.devices.clone();
    for i in 0..extra {
        let b = 100 + i;
        devices.push(DeviceKeys {
            device_id: DeviceId([b; 32]),
            olm_ed25519: [b; 32],
            olm_curve25519: [b; 32],
            mailbox_key: [b; 32],
        });
    }
    let list = DeviceList::sign(&u.key, at, devices);
    ContactCard::sign(&u.key, u.card.name.clone(), list, vec![], vec![])
}

#[test]
fn a_members_card_op_puts_its_new_devices_and_only_moves_forward() {
    let (alice, bob) = (user(1), user(2));
    let (id, c) = create(&alice);
    let invite = op(
        &alice,
        id,
        2,
        vec![c.hash()],
        Action::Invite {
            role: Role::Member,
            card: bob.card.clone(),
        },
    );
    let join = op(&bob, id, 3, vec![invite.hash()], Action::Join);
    let linked = card_with_devices(&bob, 1, 10);
    let linked_op = op(
        &bob,
        id,
        4,
        vec![join.hash()],
        Action::Card {
            card: linked.clone(),
        },
    );
    assert_eq!(
        GroupOp::from_bytes(&linked_op.to_bytes()).unwrap(),
        linked_op
    );
    linked_op.verify().unwrap();
    let state = GroupState::fold(id, [&c, &invite, &join, &linked_op]);
    assert_eq!(
        state.members[&bob.key.id()].card.device_list.devices.len(),
        2
    );

    // The device is revoked (list 20); the earlier list (10) cannot bring
    // it back, whatever order the ops come in.
    let revoked = card_with_devices(&bob, 0, 20);
    let revoke_op = op(
        &bob,
        id,
        5,
        vec![linked_op.hash()],
        Action::Card { card: revoked },
    );
    let replayed = op(
        &bob,
        id,
        6,
        vec![revoke_op.hash()],
        Action::Card { card: linked },
    );
    let state = GroupState::fold(id, [&replayed, &c, &revoke_op, &invite, &join, &linked_op]);
    let held = &state.members[&bob.key.id()].card.device_list;
    assert_eq!((held.issued_at_ms, held.devices.len()), (20, 1));
    assert_eq!(
        state.check(&bob.key.id(), &replayed.action),
        Err(GroupError::StaleCard)
    );
}

#[test]
fn card_op_carrying_another_accounts_card_is_refused() {
    // mallory, a member, tries to put her devices under bob's name (or
    // bob's newer card under hers): the op names its author's account only.
    let (alice, bob, mallory) = (user(1), user(2), user(3));
    let (id, c) = create(&alice);
    let forged = op(
        &mallory,
        id,
        2,
        vec![c.hash()],
        Action::Card {
            card: card_with_devices(&bob, 1, 10),
        },
    );
    assert_eq!(forged.verify(), Err(GroupError::CardMismatch));
    // And a stranger's own card op changes nothing.
    let stranger = op(
        &mallory,
        id,
        2,
        vec![c.hash()],
        Action::Card {
            card: card_with_devices(&mallory, 1, 10),
        },
    );
    stranger.verify().unwrap();
    let state = GroupState::fold(id, [&c, &stranger]);
    assert!(!state.members.contains_key(&mallory.key.id()));
    assert_eq!(state.version, 1);
    assert_eq!(state.idle.get(&mallory.key.id()), Some(&1));
}
