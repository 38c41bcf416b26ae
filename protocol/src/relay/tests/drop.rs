//! Attack and rule tests for `DropRevoked`: an account drops its revoked
//! devices' mailboxes, and nobody else's.

use super::*;

/// A device entry for the device whose signing key is `key`.
fn entry(key: &SigningKey) -> crate::DeviceKeys {
    crate::DeviceKeys {
        device_id: DeviceId(key.verifying_key().to_bytes()),
        olm_ed25519: [4; 32],
        olm_curve25519: [5; 32],
        mailbox_key: [6; 32],
    }
}

/// `account`'s list of `devices` at `at`, each entry proven by its device.
fn proven_list(account: &crate::AccountKey, at: u64, devices: &[&SigningKey]) -> crate::DeviceList {
    let entries: Vec<crate::DeviceKeys> = devices.iter().map(|k| entry(k)).collect();
    let proofs = entries
        .iter()
        .zip(devices)
        .map(|(e, k)| e.prove(&account.id(), k))
        .collect();
    crate::DeviceList::sign_proven(account, at, entries, proofs)
}

fn drop_revoked(old: &crate::DeviceList, new: &crate::DeviceList) -> MailboxRequest {
    MailboxRequest::DropRevoked {
        old: Box::new(old.clone()),
        new: Box::new(new.clone()),
    }
}

#[test]
fn a_revoked_devices_mailbox_is_dropped_and_refused_for_good() {
    let mut relay = Relay::new(Quotas::default());
    let alice = crate::AccountKey::from_seed([7; 32]);
    let (desktop, laptop) = (owner_key(1), owner_key(2));
    let laptop_id = DeviceId(laptop.verifying_key().to_bytes());
    relay.owner(
        1,
        &laptop,
        OwnerRequest::PutKeys {
            one_time: vec![key_bundle(laptop_id, 1)],
            fallback: key_bundle(laptop_id, 2),
        },
    );
    relay.request(2, b"bob", &deposit(mailbox_of(&laptop), [1, 2]));
    relay.commit();
    relay.answers.clear();

    let old = proven_list(&alice, 10, &[&desktop, &laptop]);
    let new = proven_list(&alice, 20, &[&desktop]);
    relay.request(3, b"anyone", &drop_revoked(&old, &new));
    relay.commit();
    assert_eq!(
        relay.answer(3),
        Some(MailboxResponse::Dropped { devices: 1 })
    );
    // The thief with the laptop reads nothing, claims nothing; nobody can
    // leave it anything; and so after a restart.
    let dropped = Some(MailboxResponse::refused(Refusal::Dropped));
    relay.owner(4, &laptop, fetch(0, 0));
    assert_eq!(relay.answer(4), dropped);
    relay.request(5, b"bob", &MailboxRequest::ClaimKey { device: laptop_id });
    assert_eq!(relay.answer(5), dropped);
    relay.request(6, b"bob", &deposit(mailbox_of(&laptop), [3]));
    assert_eq!(
        results(relay.answer(6)),
        [DepositResult::Refused(Refusal::Dropped)]
    );
    let rules = RelayRules {
        quotas: Quotas::default(),
        retention_secs: 3600,
        push: Default::default(),
    };
    relay.engine = RelayEngine::load(rules, [[1; 32], [2; 32]], &relay.store, relay.now).unwrap();
    relay.owner(7, &laptop, fetch(0, 0));
    assert_eq!(relay.answer(7), dropped);
    assert_eq!(relay.engine.stats().dropped_mailboxes, 1);
    // The desktop goes on as before.
    relay.owner(8, &desktop, fetch(0, 0));
    assert_eq!(items(relay.answer(8)), Vec::<u64>::new());
}

#[test]
fn an_account_cannot_drop_another_accounts_device() {
    // mallory lists bob's device on her own list (she cannot prove it: bob
    // signs his entry for his account only), then "revokes" it.
    let mut relay = Relay::new(Quotas::default());
    let mallory = crate::AccountKey::from_seed([8; 32]);
    let bob_account = crate::AccountKey::from_seed([9; 32]);
    let (mallory_device, bob) = (owner_key(3), owner_key(4));
    relay.request(1, b"alice", &deposit(mailbox_of(&bob), [1]));
    relay.commit();
    relay.answers.clear();
    let unproven = crate::DeviceList::sign(&mallory, 10, vec![entry(&mallory_device), entry(&bob)]);
    let new = proven_list(&mallory, 20, &[&mallory_device]);
    // bob's proof for his own account does not count on hers either.
    let mut borrowed = proven_list(&mallory, 10, &[&mallory_device, &bob]);
    borrowed.proofs[1] = entry(&bob).prove(&bob_account.id(), &bob);
    let borrowed = crate::DeviceList::sign_proven(
        &mallory,
        10,
        borrowed.devices.clone(),
        borrowed.proofs.clone(),
    );
    // And an older "new" list, or two accounts' lists, drop nothing.
    let bob_old = proven_list(&bob_account, 10, &[&bob]);
    let bob_new = proven_list(&bob_account, 5, &[]);
    let other = proven_list(&mallory, 30, &[]);
    for (token, request) in [
        (2, drop_revoked(&unproven, &new)),
        (3, drop_revoked(&borrowed, &new)),
        (4, drop_revoked(&bob_old, &bob_new)),
        (5, drop_revoked(&bob_old, &other)),
    ] {
        relay.request(token, b"mallory", &request);
        relay.commit();
        assert!(
            matches!(
                relay.answer(token),
                Some(MailboxResponse::Refused {
                    reason: Refusal::Malformed,
                    ..
                })
            ),
            "request {token} was not refused"
        );
    }
    relay.owner(6, &bob, fetch(0, 0));
    assert_eq!(items(relay.answer(6)), [1], "bob's mailbox is untouched");
}

#[test]
fn a_drop_whose_commit_failed_lands_when_asked_again() {
    let mut relay = Relay::new(Quotas::default());
    let alice = crate::AccountKey::from_seed([7; 32]);
    let (desktop, laptop) = (owner_key(1), owner_key(2));
    let old = proven_list(&alice, 10, &[&desktop, &laptop]);
    let new = proven_list(&alice, 20, &[&desktop]);
    relay.store.fail_next_commit = true;
    relay.request(1, b"alice", &drop_revoked(&old, &new));
    relay.commit();
    assert_eq!(
        relay.answer(1),
        Some(MailboxResponse::refused(Refusal::Unavailable))
    );
    relay.request(2, b"alice", &drop_revoked(&old, &new));
    relay.commit();
    assert_eq!(
        relay.answer(2),
        Some(MailboxResponse::Dropped { devices: 1 })
    );
    // On disk now: a restarted relay still refuses the laptop.
    let rules = RelayRules {
        quotas: Quotas::default(),
        retention_secs: 3600,
        push: Default::default(),
    };
    relay.engine = RelayEngine::load(rules, [[1; 32], [2; 32]], &relay.store, relay.now).unwrap();
    relay.owner(3, &laptop, fetch(0, 0));
    assert_eq!(
        relay.answer(3),
        Some(MailboxResponse::refused(Refusal::Dropped))
    );
}
