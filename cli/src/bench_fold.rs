//! `hush bench fold`: how long a member takes to fold a group's ops into
//! its state (`OpSet::fold`), for a group of N members, cold (first fold
//! of the whole set, as on joining), warm (again, as after one more op),
//! and op by op (every op arriving in its own message, as a member
//! receiving changes one at a time): folded onto the last state
//! (`OpSet::fold_after`, what members do) and, for comparison, the whole
//! set refolded each time (what they did before).
//!
//! Then the same members joining at once: every invitation first, then
//! the joins, each naming only its own invitation (concurrent with the
//! others), dated in the order they were made and arriving nearly in that
//! order (a random quarter of them one place late, as gossip delivers),
//! folded op by op onto the last state. A join that arrives after a later
//! one belongs in the middle of the order and takes a whole fold.
//!
//! Last, the whole set sent again (a heads answer or a sync to a member
//! that holds it): what telling each op as held costs, by its signature
//! (`OpSet::holds`, what members do) and by hashing it (what they did).

use std::time::{Duration, Instant};

use anyhow::Result;
use hush_protocol::{
    AccountKey, Action, ContactCard, DeviceId, DeviceKeys, DeviceList, GroupId, GroupOp,
    GroupState, MAX_MEMBER_LIMIT, MessageId, OpSet, Role,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

fn card(key: &AccountKey, n: u32) -> ContactCard {
    let mut id = [0u8; 32];
    id[..4].copy_from_slice(&n.to_be_bytes());
    let device = DeviceKeys {
        device_id: DeviceId(id),
        olm_ed25519: id,
        olm_curve25519: id,
        mailbox_key: id,
    };
    let list = DeviceList::sign(key, 1, vec![device]);
    ContactCard::sign(key, format!("m{n}"), list, vec![], vec![])
}

fn member_key(n: u32) -> AccountKey {
    let mut seed = [2u8; 32];
    seed[..4].copy_from_slice(&n.to_be_bytes());
    AccountKey::from_seed(seed)
}

/// The creator's group with `members` more: each invited by the creator
/// (every invitation after the previous join), then joining.
fn history(members: u32) -> (GroupId, Vec<GroupOp>) {
    let creator = AccountKey::from_seed([1; 32]);
    let nonce = [7; 16];
    let id = GroupId::derive(&creator.id(), &nonce);
    let mut at = 1u128 << 80;
    let create = GroupOp::sign(
        &creator,
        id,
        MessageId(at),
        vec![],
        Action::Create {
            nonce,
            name: "bench".into(),
            member_limit: (members + 1).min(MAX_MEMBER_LIMIT),
            card: card(&creator, 0),
        },
    );
    let mut ops = vec![create];
    for n in 1..=members {
        let member = member_key(n);
        at += 1 << 64;
        let last = ops.last().map(GroupOp::hash).unwrap_or_default();
        let invite = GroupOp::sign(
            &creator,
            id,
            MessageId(at),
            vec![last],
            Action::Invite {
                role: Role::Member,
                card: card(&member, n),
            },
        );
        at += 1 << 64;
        let join = GroupOp::sign(
            &member,
            id,
            MessageId(at),
            vec![invite.hash()],
            Action::Join,
        );
        ops.extend([invite, join]);
    }
    (id, ops)
}

/// The same group joined at once: `history`'s ops with every join naming
/// only its own invitation and dated after every invitation, in arrival
/// order (see the module doc).
fn joined_at_once(id: GroupId, ops: &[GroupOp]) -> Vec<GroupOp> {
    let creator = AccountKey::from_seed([1; 32]);
    let mut invites = vec![ops[0].clone()];
    let mut joins = Vec::new();
    let last_at = ops.last().map_or(0, |op| op.at.0);
    for (n, pair) in (1..).zip(ops[1..].chunks(2)) {
        let Some(invite) = pair.first() else { break };
        // After the previous invitation, not the previous join.
        let parents = invites.last().map(GroupOp::hash).into_iter().collect();
        let invite = GroupOp::sign(&creator, id, invite.at, parents, invite.action.clone());
        let join_at = MessageId(last_at + (u128::from(n) << 64));
        joins.push(GroupOp::sign(
            &member_key(n),
            id,
            join_at,
            vec![invite.hash()],
            Action::Join,
        ));
        invites.push(invite);
    }
    let mut rng = StdRng::seed_from_u64(7);
    let mut i = 0;
    while i + 1 < joins.len() {
        if rng.gen_range(0..4) == 0 {
            joins.swap(i, i + 1);
            i += 1;
        }
        i += 1;
    }
    invites.extend(joins);
    invites
}

/// `ops` arriving one at a time, each folded onto the last state (what a
/// member does); the state, and how long it all took.
fn op_by_op(id: GroupId, ops: &[GroupOp]) -> (GroupState, Duration) {
    let mut set = OpSet::default();
    let mut last = GroupState::fold(id, []);
    let started = Instant::now();
    for op in ops {
        set.insert(op.clone());
        last = set.fold_after(id, last, &[op.hash()]).0;
    }
    (last, started.elapsed())
}

pub fn fold(members: u32, as_json: bool) -> Result<()> {
    let members = members.clamp(1, MAX_MEMBER_LIMIT - 1);
    let (id, ops) = history(members);
    let mut set = OpSet::default();
    for op in &ops {
        set.insert(op.clone());
    }
    let started = Instant::now();
    let state = set.fold(id);
    let cold = started.elapsed();
    anyhow::ensure!(
        state.members.len() == members as usize + 1,
        "the bench group folded into {} members, not {}",
        state.members.len(),
        members + 1
    );
    let started = Instant::now();
    set.fold(id);
    let warm = started.elapsed();
    let (last, incremental) = op_by_op(id, &ops);
    anyhow::ensure!(last == state, "folding op by op gave another state");
    let per_op_us = incremental.as_secs_f64() * 1e6 / ops.len() as f64;
    // The whole set refolded after each op, for comparison (skipped past
    // 2,000 members: minutes).
    let refold_per_op_us = (members <= 2_000).then(|| {
        let mut refolded = OpSet::default();
        let started = Instant::now();
        for op in &ops {
            refolded.insert(op.clone());
            refolded.fold(id);
        }
        started.elapsed().as_secs_f64() * 1e6 / ops.len() as f64
    });
    let at_once = joined_at_once(id, &ops);
    let (last, at_once_elapsed) = op_by_op(id, &at_once);
    let mut whole = OpSet::default();
    for op in &at_once {
        whole.insert(op.clone());
    }
    anyhow::ensure!(
        last == whole.fold(id) && last.joined().count() == members as usize + 1,
        "joining at once, op by op, gave another state"
    );
    let at_once_per_op_us = at_once_elapsed.as_secs_f64() * 1e6 / at_once.len() as f64;
    let (resent_us, resent_hashed_us) = resent(&set, &ops)?;
    if as_json {
        println!(
            "{}",
            json!({
                "at_once_total_ms": at_once_elapsed.as_secs_f64() * 1e3,
                "at_once_per_op_us": at_once_per_op_us,
                "members": members + 1,
                "ops": ops.len(),
                "cold_fold_ms": cold.as_secs_f64() * 1e3,
                "warm_fold_ms": warm.as_secs_f64() * 1e3,
                "op_by_op_total_ms": incremental.as_secs_f64() * 1e3,
                "op_by_op_per_op_us": per_op_us,
                "refold_per_op_us": refold_per_op_us,
                "resent_held_per_op_us": resent_us,
                "resent_hashed_per_op_us": resent_hashed_us,
            })
        );
    } else {
        println!(
            "{} members, {} ops: cold fold {:.2} ms, warm fold {:.2} ms; op by op {:.0} ms in all ({:.0} µs per op; refolding the whole set each time: {})",
            members + 1,
            ops.len(),
            cold.as_secs_f64() * 1e3,
            warm.as_secs_f64() * 1e3,
            incremental.as_secs_f64() * 1e3,
            per_op_us,
            refold_per_op_us.map_or("not run".to_owned(), |us| format!("{us:.0} µs per op")),
        );
        println!(
            "joining at once (concurrent joins, a quarter arriving one place late): op by op {:.0} ms in all ({:.0} µs per op)",
            at_once_elapsed.as_secs_f64() * 1e3,
            at_once_per_op_us,
        );
        println!(
            "the whole set sent again: {resent_us:.2} µs per op to tell it is held ({resent_hashed_us:.2} µs hashing each)"
        );
    }
    Ok(())
}

/// Per op of `ops` (all in `set`), µs to tell it is held: by signature,
/// and by hashing it; ten rounds each.
fn resent(set: &OpSet, ops: &[GroupOp]) -> Result<(f64, f64)> {
    const ROUNDS: usize = 10;
    let started = Instant::now();
    let held = (0..ROUNDS)
        .map(|_| ops.iter().filter(|op| set.holds(op)).count())
        .sum::<usize>();
    let by_signature = started.elapsed();
    let started = Instant::now();
    let hashed = (0..ROUNDS)
        .map(|_| ops.iter().filter(|op| set.contains(&op.hash())).count())
        .sum::<usize>();
    let by_hash = started.elapsed();
    anyhow::ensure!(
        held == ROUNDS * ops.len() && hashed == held,
        "ops of the set were not found held"
    );
    let per_op = |d: Duration| d.as_secs_f64() * 1e6 / (ROUNDS * ops.len()) as f64;
    Ok((per_op(by_signature), per_op(by_hash)))
}
