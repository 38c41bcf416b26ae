//! Push for offline devices: only the owner registers, only endpoints the
//! operator allows, a wake-up only for a device not connected, at most one
//! per interval, and nothing in it about the mail.

use super::batch::batch;
use super::*;
use crate::relay::PushRules;
use crate::{BatchRequest, PushTarget};

const ENDPOINT: &str = "https://push.example.org/up/4f2a";
/// The peer the owner's requests come from (see `Relay::owner`).
const OWNER_PEER: &[u8] = b"owner";

fn target(token: u8) -> PushTarget {
    PushTarget {
        endpoint: ENDPOINT.into(),
        token: [token; 16],
    }
}

fn relay_with(push: PushRules) -> Relay {
    let mut relay = Relay::new(Quotas::default());
    let rules = RelayRules {
        quotas: Quotas::default(),
        retention_secs: 3600,
        push,
    };
    relay.engine = RelayEngine::load(rules, [[1; 32], [2; 32]], &relay.store, relay.now).unwrap();
    relay
}

fn register(relay: &mut Relay, key: &SigningKey, target: Option<PushTarget>) -> MailboxResponse {
    relay.owner(50, key, OwnerRequest::SetPush { target });
    relay.commit();
    relay.answer(50).expect("no answer to SetPush")
}

fn pushes(relay: &mut Relay) -> Vec<PushTarget> {
    relay.advance(0);
    std::iter::from_fn(|| relay.engine.poll_push()).collect()
}

const FETCH: BatchRequest = BatchRequest::Fetch {
    after: 0,
    limit: 10,
};

/// `owner` fetches with a key set naming `pairwise` in full; the challenge
/// it signed under.
fn fetch_naming(relay: &mut Relay, owner: &SigningKey, pairwise: &SigningKey) -> [u8; 32] {
    let challenge = relay.challenge();
    let request = batch(owner, challenge, &[pairwise], None, FETCH);
    relay.request(3, OWNER_PEER, &request);
    assert!(matches!(
        relay.answer(3),
        Some(MailboxResponse::Batch { .. })
    ));
    challenge
}

fn mail(relay: &mut Relay, mailbox: MailboxId, n: u32) {
    relay.request(1000 + n, b"sender", &deposit(mailbox, [n]));
    relay.commit();
    assert_eq!(results(relay.answer(1000 + n)), [DepositResult::Stored]);
}

#[test]
fn mail_for_an_offline_device_wakes_it_once_per_interval() {
    let mut relay = relay_with(PushRules::default());
    let bob = owner_key(1);
    assert_eq!(
        register(&mut relay, &bob, Some(target(7))),
        MailboxResponse::PushSet { active: true }
    );
    relay.engine.handle_connection(OWNER_PEER, false);
    mail(&mut relay, mailbox_of(&bob), 1);
    assert_eq!(pushes(&mut relay), [target(7)]);
    // More mail within the interval: nothing yet…
    mail(&mut relay, mailbox_of(&bob), 2);
    mail(&mut relay, mailbox_of(&bob), 3);
    relay.advance(59_000);
    assert_eq!(pushes(&mut relay), []);
    // …then one wake-up for all of it.
    relay.advance(1_000);
    assert_eq!(pushes(&mut relay), [target(7)]);
    relay.advance(120_000);
    assert_eq!(pushes(&mut relay), [], "woken with no new mail");
    assert_eq!(relay.engine.stats().pushes, 2);
    assert_eq!(relay.engine.stats().push_devices, 1);
}

#[test]
fn a_connected_device_is_not_woken() {
    let mut relay = relay_with(PushRules::default());
    let bob = owner_key(1);
    register(&mut relay, &bob, Some(target(7)));
    mail(&mut relay, mailbox_of(&bob), 1);
    assert_eq!(pushes(&mut relay), [], "woken while connected");
    relay.engine.handle_connection(OWNER_PEER, false);
    relay.engine.handle_connection(OWNER_PEER, true);
    mail(&mut relay, mailbox_of(&bob), 2);
    assert_eq!(pushes(&mut relay), [], "woken after it came back");
    // Away with mail still held: woken once.
    relay.engine.handle_connection(OWNER_PEER, false);
    relay.advance(61_000);
    assert_eq!(pushes(&mut relay), [target(7)]);
    // It fetched since (a signed request): more mail wakes nobody.
    relay.owner(2, &bob, fetch(0, 0));
    relay.advance(61_000);
    mail(&mut relay, mailbox_of(&bob), 3);
    assert_eq!(pushes(&mut relay), [], "woken after it fetched");
}

#[test]
fn mail_in_a_pairwise_mailbox_wakes_its_device() {
    let mut relay = relay_with(PushRules::default());
    let (bob, pairwise) = (owner_key(1), owner_key(2));
    register(&mut relay, &bob, Some(target(7)));
    fetch_naming(&mut relay, &bob, &pairwise);
    relay.engine.handle_connection(OWNER_PEER, false);
    mail(&mut relay, mailbox_of(&pairwise), 1);
    assert_eq!(pushes(&mut relay), [target(7)]);
    // Someone else's mailbox wakes nobody.
    relay.advance(61_000);
    mail(&mut relay, mailbox_of(&owner_key(3)), 2);
    assert_eq!(pushes(&mut relay), []);
}

#[test]
fn a_device_that_registers_after_its_key_set_is_known_is_woken_for_pairwise_mail() {
    let mut relay = relay_with(PushRules::default());
    let (bob, pairwise) = (owner_key(1), owner_key(2));
    let challenge = fetch_naming(&mut relay, &bob, &pairwise);
    register(&mut relay, &bob, Some(target(7)));
    // Later batches name the set by digest only.
    let keys: Vec<DeviceId> = vec![DeviceId(pairwise.verifying_key().to_bytes())];
    let digest =
        crate::KeySet::digest(&challenge, &DeviceId(bob.verifying_key().to_bytes()), &keys);
    let known = super::batch::named(&bob, challenge, crate::KeySet::Known(digest), FETCH);
    relay.request(4, OWNER_PEER, &known);
    assert!(matches!(
        relay.answer(4),
        Some(MailboxResponse::Batch { .. })
    ));
    relay.engine.handle_connection(OWNER_PEER, false);
    mail(&mut relay, mailbox_of(&pairwise), 1);
    assert_eq!(pushes(&mut relay), [target(7)]);
}

#[test]
fn a_device_that_goes_offline_right_after_registering_is_woken_for_pairwise_mail() {
    let mut relay = relay_with(PushRules::default());
    let (bob, pairwise) = (owner_key(1), owner_key(2));
    fetch_naming(&mut relay, &bob, &pairwise);
    // Registered after its last batch, and gone before the next.
    register(&mut relay, &bob, Some(target(7)));
    relay.engine.handle_connection(OWNER_PEER, false);
    mail(&mut relay, mailbox_of(&pairwise), 1);
    assert_eq!(pushes(&mut relay), [target(7)]);
}

#[test]
fn a_stranger_cannot_point_a_devices_push_elsewhere() {
    let mut relay = relay_with(PushRules::default());
    let (bob, mallory) = (owner_key(1), owner_key(9));
    register(&mut relay, &bob, Some(target(7)));
    // Mallory signs a SetPush naming bob's device with her key.
    let challenge = relay.challenge();
    let MailboxRequest::Owner { mut auth, request } = signed(
        &mallory,
        challenge,
        OwnerRequest::SetPush {
            target: Some(PushTarget {
                endpoint: "https://evil.example/collect".into(),
                token: [1; 16],
            }),
        },
    ) else {
        unreachable!()
    };
    auth.device = DeviceId(bob.verifying_key().to_bytes());
    relay.request(4, b"mallory", &MailboxRequest::Owner { auth, request });
    relay.commit();
    assert_eq!(
        relay.answer(4),
        Some(MailboxResponse::refused(Refusal::NotOwner))
    );
    relay.engine.handle_connection(OWNER_PEER, false);
    mail(&mut relay, mailbox_of(&bob), 1);
    assert_eq!(pushes(&mut relay), [target(7)]);
}

#[test]
fn a_push_endpoint_inside_the_relays_network_is_refused() {
    let mut relay = relay_with(PushRules::default());
    let bob = owner_key(1);
    for endpoint in [
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://[::1]:8443/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[fd00::1]/hook",
        "https://[::ffff:192.168.1.1]/hook",
        "https://[::127.0.0.1]/hook",
        "https://[fec0::1]/hook",
        "https://[64:ff9b::a00:1]/hook",
        "https://192.0.0.8/hook",
        "http://push.example.org/plain",
        "https://user@push.example.org/",
    ] {
        let answer = register(
            &mut relay,
            &bob,
            Some(PushTarget {
                endpoint: endpoint.into(),
                token: [1; 16],
            }),
        );
        assert!(
            matches!(
                answer,
                MailboxResponse::Refused {
                    reason: Refusal::PushRefused,
                    ..
                }
            ),
            "{endpoint}: {answer:?}"
        );
    }
    assert_eq!(relay.engine.stats().push_devices, 0);
}

#[test]
fn an_operator_restricts_push_to_its_hosts_or_turns_it_off() {
    let only = PushRules {
        allow_hosts: vec!["ntfy.sh".into()],
        ..PushRules::default()
    };
    let mut relay = relay_with(only);
    let bob = owner_key(1);
    let refused = register(&mut relay, &bob, Some(target(1)));
    assert!(
        matches!(&refused, MailboxResponse::Refused { message, .. } if message.contains("ntfy.sh")),
        "{refused:?}"
    );
    let allowed = PushTarget {
        endpoint: "https://up.ntfy.sh/abc".into(),
        token: [1; 16],
    };
    assert_eq!(
        register(&mut relay, &bob, Some(allowed)),
        MailboxResponse::PushSet { active: true }
    );
    let off = PushRules {
        enabled: false,
        ..PushRules::default()
    };
    let mut relay = relay_with(off);
    assert!(matches!(
        register(&mut relay, &bob, Some(target(1))),
        MailboxResponse::Refused {
            reason: Refusal::PushRefused,
            ..
        }
    ));
}

#[test]
fn a_registration_survives_a_restart_and_goes_when_removed_or_revoked() {
    let mut relay = relay_with(PushRules::default());
    let bob = owner_key(1);
    register(&mut relay, &bob, Some(target(7)));
    // A new registration replaces the token.
    register(&mut relay, &bob, Some(target(8)));
    relay.engine = RelayEngine::load(
        RelayRules {
            quotas: Quotas::default(),
            retention_secs: 3600,
            push: PushRules::default(),
        },
        [[1; 32], [2; 32]],
        &relay.store,
        relay.now,
    )
    .unwrap();
    mail(&mut relay, mailbox_of(&bob), 1);
    assert_eq!(pushes(&mut relay), [target(8)], "after a restart");
    assert_eq!(
        register(&mut relay, &bob, None),
        MailboxResponse::PushSet { active: false }
    );
    relay.advance(61_000);
    mail(&mut relay, mailbox_of(&bob), 2);
    assert_eq!(pushes(&mut relay), [], "woken after it turned push off");
    assert_eq!(relay.engine.stats().push_devices, 0);
}

#[test]
fn one_address_registering_fresh_devices_gets_its_share_a_minute() {
    let mut relay = relay_with(PushRules::default());
    let ip: std::net::IpAddr = "203.0.113.7".parse().unwrap();
    let register_from = |relay: &mut Relay, n: u8| {
        let key = owner_key(100 + n);
        let challenge = relay.challenge();
        let request = signed(
            &key,
            challenge,
            OwnerRequest::SetPush {
                target: Some(target(n)),
            },
        );
        relay.engine.handle_request_from(
            relay.now,
            b"flooder",
            Some(ip),
            &request.to_bytes(),
            900 + u32::from(n),
            &relay.store,
        );
        relay.collect();
        relay.commit();
        relay.answer(900 + u32::from(n)).expect("an answer")
    };
    let answers: Vec<MailboxResponse> = (0..12).map(|n| register_from(&mut relay, n)).collect();
    let stored = answers
        .iter()
        .filter(|a| **a == MailboxResponse::PushSet { active: true })
        .count();
    assert_eq!(stored, 10, "{answers:?}");
    assert_eq!(answers[11], MailboxResponse::refused(Refusal::Unavailable));
    relay.advance(60_000);
    assert_eq!(
        register_from(&mut relay, 20),
        MailboxResponse::PushSet { active: true }
    );
}

#[test]
fn mail_that_landed_while_a_suspended_device_looked_connected_wakes_it_when_it_drops() {
    let mut relay = relay_with(PushRules::default());
    let bob = owner_key(1);
    register(&mut relay, &bob, Some(target(7)));
    // Its connection lingers (a phone asleep): counted as connected.
    mail(&mut relay, mailbox_of(&bob), 1);
    assert_eq!(pushes(&mut relay), []);
    relay.engine.handle_connection(OWNER_PEER, false);
    assert_eq!(pushes(&mut relay), [target(7)]);
}

#[test]
fn a_removal_whose_commit_failed_is_written_when_asked_again() {
    let mut relay = relay_with(PushRules::default());
    let bob = owner_key(1);
    register(&mut relay, &bob, Some(target(7)));
    relay.owner(51, &bob, OwnerRequest::SetPush { target: None });
    relay.store.fail_next_commit = true;
    relay.commit();
    assert_eq!(
        relay.answer(51),
        Some(MailboxResponse::refused(Refusal::Unavailable))
    );
    assert_eq!(
        relay.store.push_targets().unwrap().len(),
        1,
        "still on disk"
    );
    assert_eq!(
        register(&mut relay, &bob, None),
        MailboxResponse::PushSet { active: false }
    );
    assert_eq!(relay.store.push_targets().unwrap(), []);
}

#[test]
fn a_registration_the_rules_no_longer_allow_wakes_nobody_after_a_restart() {
    let mut relay = relay_with(PushRules::default());
    let bob = owner_key(1);
    register(&mut relay, &bob, Some(target(7)));
    let off = RelayRules {
        quotas: Quotas::default(),
        retention_secs: 3600,
        push: PushRules {
            allow_hosts: vec!["ntfy.sh".into()],
            ..PushRules::default()
        },
    };
    relay.engine = RelayEngine::load(off, [[1; 32], [2; 32]], &relay.store, relay.now).unwrap();
    mail(&mut relay, mailbox_of(&bob), 1);
    assert_eq!(pushes(&mut relay), []);
    assert_eq!(relay.engine.stats().push_devices, 0);
}

#[test]
fn an_endpoint_that_says_it_is_gone_is_forgotten() {
    let mut relay = relay_with(PushRules::default());
    let (bob, carol) = (owner_key(1), owner_key(2));
    register(&mut relay, &bob, Some(target(7)));
    register(&mut relay, &carol, Some(target(8)));
    // A 410 for a token bob no longer uses changes nothing.
    relay.engine.handle_push_gone(&target(6));
    relay.engine.handle_push_gone(&target(7));
    relay.commit();
    assert_eq!(relay.engine.stats().push_devices, 1);
    let stored = relay.store.push_targets().unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].1, target(8));
}
