//! Folding: onto the last state, from a kept state, and the whole fold,
//! agreeing whatever order and batches ops arrive in.

use proptest::prelude::*;

use super::*;

#[test]
fn ops_that_extend_the_set_are_folded_onto_the_last_state() {
    let (id, ops) = linear_history(20);
    let mut set = OpSet::default();
    let mut state = GroupState::fold(id, []);
    for (i, o) in ops.iter().enumerate() {
        set.insert(o.clone());
        let fast = set.extend(id, state.clone(), &[o.hash()]);
        let Some((next, idle)) = fast else {
            panic!("op {i} extends the set but was not folded onto it");
        };
        assert!(idle.is_empty());
        assert_eq!(next, set.fold(id), "op {i}");
        let heads = set.heads_given(id, &user(1).key.id(), Some(&next));
        assert_eq!(heads, [o.hash()], "op {i}");
        state = next;
    }
    // An op concurrent with ops already here but dated before one of them
    // lands in the middle of the order: the whole set is folded again.
    let early = op(&user(30), id, 3, vec![ops[0].hash()], Action::Leave);
    set.insert(early.clone());
    assert!(set.extend(id, state.clone(), &[early.hash()]).is_none());
    let (folded, idle) = set.fold_after(id, state, &[early.hash()]);
    assert_eq!(folded, set.fold(id));
    assert!(idle.contains(&early.hash()));
    // One dated after all of them comes last: folded onto the last state.
    let late = op(&user(31), id, 99, vec![ops[0].hash()], Action::Leave);
    set.insert(late.clone());
    let fast = set.extend(id, folded, &[late.hash()]);
    let Some((next, idle)) = fast else {
        panic!("an op later than all others was not folded onto the last state");
    };
    assert_eq!(next, set.fold(id));
    assert_eq!(idle, [late.hash()], "user 31 is no member");
}

/// alice creates the group and invites `n` members one after another;
/// each joins knowing only its own invitation (as many members joining at
/// once do: their joins are concurrent), at times that need not follow the
/// invitations' order. With a `member_limit` below `n`, which joins take
/// effect depends on where the fold places each.
fn concurrent_joins(n: u8, join_at: &[u128], member_limit: u32) -> (GroupId, Vec<GroupOp>) {
    let alice = user(1);
    let (id, c) = create_with(&alice, [9; 16], "many", member_limit);
    let mut head = c.hash();
    let mut ops = vec![c];
    let mut joins = Vec::new();
    for i in 0..n {
        let member = user(2 + i);
        let invite = op(
            &alice,
            id,
            2 + u128::from(i),
            vec![head],
            Action::Invite {
                role: Role::Member,
                card: member.card.clone(),
            },
        );
        head = invite.hash();
        let at = join_at.get(usize::from(i)).copied().unwrap_or(0);
        joins.push(op(&member, id, 100 + at, vec![invite.hash()], Action::Join));
        ops.push(invite);
    }
    ops.extend(joins);
    (id, ops)
}

/// Inserts `ops` in `order`, in batches of the sizes `cuts` gives (then
/// one at a time), folding each batch onto the last state and checking it
/// against the whole fold; the last state.
fn fold_in_batches(
    id: GroupId,
    ops: &[GroupOp],
    order: &[usize],
    cuts: &[usize],
) -> Result<GroupState, TestCaseError> {
    let mut set = OpSet::default();
    let mut state = GroupState::fold(id, []);
    let mut next = order.iter();
    let mut sizes = cuts.iter().copied().chain(std::iter::repeat(1));
    loop {
        let size = sizes.next().unwrap_or(1);
        let batch: Vec<&GroupOp> = next.by_ref().take(size).map(|i| &ops[*i]).collect();
        if batch.is_empty() {
            return Ok(state);
        }
        let mut hashes = Vec::new();
        for o in batch {
            if set.insert(o.clone()) {
                hashes.push(o.hash());
            }
        }
        let (folded, idle) = set.fold_after(id, state.clone(), &hashes);
        // On a copy, which starts with no memo of the last fold: this set
        // keeps the one its own folds made.
        let (whole, whole_idle) = set.clone().fold_and_idle(id);
        prop_assert_eq!(&folded, &whole);
        for h in &hashes {
            prop_assert_eq!(idle.contains(h), whole_idle.contains(h));
        }
        state = folded;
    }
}

#[test]
fn a_join_dated_before_the_last_is_folded_from_a_kept_state_not_from_the_start() {
    // 60 joins, each dated earlier than the one before: every one that
    // arrives goes before the others in the fold's order.
    let n = 60u8;
    let join_at: Vec<u128> = (0..u128::from(n)).rev().collect();
    let (id, ops) = concurrent_joins(n, &join_at, 100);
    let mut set = OpSet::default();
    let (invitations, joins) = ops.split_at(1 + usize::from(n));
    for o in invitations {
        set.insert(o.clone());
    }
    set.insert(joins[0].clone());
    let mut state = set.fold(id);
    for join in &joins[1..] {
        set.insert(join.clone());
        assert!(
            set.extend(id, state.clone(), &[join.hash()]).is_none(),
            "not at the end of the order"
        );
        let (replayed, idle) = set
            .replay(id, &[join.hash()])
            .expect("folded again from a kept state");
        let (whole, whole_idle) = set.clone().fold_and_idle(id);
        assert_eq!(replayed, whole);
        assert_eq!(idle.len(), whole_idle.len());
        // The order it keeps is the set's causal order.
        let kept: Option<Vec<OpHash>> = set
            .memo_order(id)
            .map(|order| order.iter().map(|(h, _)| *h).collect());
        let causal: Vec<OpHash> = set.causal_order(id).iter().map(|(h, _)| *h).collect();
        assert_eq!(kept, Some(causal));
        state = replayed;
    }
    assert_eq!(state.joined().count(), usize::from(n) + 1);
    // A removal takes the whole fold (rule 4 may void what came before).
    let remove = op(
        &user(1),
        id,
        1_000,
        vec![joins[0].hash()],
        Action::Remove {
            account: user(2).key.id(),
        },
    );
    set.insert(remove.clone());
    assert!(set.replay(id, &[remove.hash()]).is_none());
}

proptest! {
    // Each case verifies 22 signatures: 64 cases keep it near a second.
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// However ops arrive (in any order, in batches of any size), folding
    /// each batch onto the last state gives what folding everything gives.
    #[test]
    fn folding_onto_the_last_state_agrees_with_the_whole_fold(
        order in Just((0..11).collect::<Vec<usize>>()).prop_shuffle(),
        cuts in prop::collection::vec(1..4usize, 0..11),
        in_order in any::<bool>(),
    ) {
        let (id, ops) = eventful_history();
        let order: Vec<usize> = if in_order { (0..11).collect() } else { order };
        fold_in_batches(id, &ops, &order, &cuts)?;
    }

    /// Many members join at once (each join concurrent with the others,
    /// dated in any order, some at the same moment), and the ops arrive in
    /// any order and batches: folding each batch onto the last state gives
    /// what folding everything gives.
    #[test]
    fn concurrent_joins_folded_onto_the_last_state_agree_with_the_whole_fold(
        join_at in prop::collection::vec(0..6u128, 6),
        order in Just((0..13).collect::<Vec<usize>>()).prop_shuffle(),
        cuts in prop::collection::vec(1..3usize, 0..13),
        invitations_first in any::<bool>(),
        limited in any::<bool>(),
    ) {
        let limit = if limited { 4 } else { 100 };
        let (id, ops) = concurrent_joins(6, &join_at, limit);
        let order: Vec<usize> = if invitations_first {
            let (mut first, joins): (Vec<usize>, Vec<usize>) = order.iter().partition(|i| **i < 7);
            first.sort_unstable();
            first.extend(joins);
            first
        } else {
            order
        };
        let state = fold_in_batches(id, &ops, &order, &cuts)?;
        if !limited {
            prop_assert_eq!(state.joined().count(), 7);
        }
    }

    /// Every order of arrival, with any op arriving more than once, folds
    /// into the same state: members converge whatever the network did.
    #[test]
    fn every_order_and_duplication_of_ops_folds_to_the_same_state(
        order in Just((0..EVENTFUL_OPS).collect::<Vec<usize>>()).prop_shuffle(),
        again in prop::collection::vec(0..EVENTFUL_OPS, 0..8),
    ) {
        let (id, ops) = eventful_history();
        let mut expected = OpSet::default();
        for o in &ops {
            expected.insert(o.clone());
        }
        let expected = expected.fold(id);
        // The history is not trivial: the creator and bob hold, one of the
        // concurrent invitations won, and the removed member's invite did not.
        prop_assert!(expected.members.contains_key(&user(1).key.id()));
        prop_assert!(expected.members.contains_key(&user(2).key.id()));
        prop_assert!(!expected.members.contains_key(&user(5).key.id()));
        // bob's newest list holds, not the older one that came concurrently.
        let bob = &expected.members[&user(2).key.id()].card.device_list;
        prop_assert_eq!(bob.issued_at_ms, 30);
        let mut set = OpSet::default();
        for i in order.iter().chain(&again) {
            set.insert(ops[*i].clone());
        }
        prop_assert_eq!(set.fold(id), expected.clone());
        let arrived: Vec<&GroupOp> = order.iter().chain(&again).map(|i| &ops[*i]).collect();
        prop_assert_eq!(GroupState::fold(id, arrived), expected);
    }
}
