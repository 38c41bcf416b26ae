use ed25519_dalek::SigningKey;

use super::*;
use crate::AccountKey;

const NOW: u64 = 1_700_000_000_000;

fn code(old: DeviceId) -> LinkCode {
    LinkCode {
        device: old,
        secret: [7; 32],
        expires_at_ms: NOW + LINK_VALID_MS,
        addresses: vec!["/ip4/127.0.0.1/tcp/4001".into()],
    }
}

fn new_device(seed: u8) -> (DeviceKeys, SigningKey) {
    let key = SigningKey::from_bytes(&[seed; 32]);
    let keys = DeviceKeys {
        device_id: DeviceId(key.verifying_key().to_bytes()),
        olm_ed25519: [seed; 32],
        olm_curve25519: [seed.wrapping_add(1); 32],
        mailbox_key: [seed.wrapping_add(2); 32],
    };
    (keys, key)
}

fn request(account: &AccountId, seed: u8) -> LinkRequest {
    let (device, key) = new_device(seed);
    LinkRequest {
        device,
        proof: device.prove(account, &key),
        name: "laptop".into(),
        history_since_ms: 0,
    }
}

struct Pair {
    responder: LinkResponder,
    account: AccountKey,
    old: DeviceId,
}

fn pair() -> Pair {
    let account = AccountKey::from_seed([1; 32]);
    let old = new_device(2).0.device_id;
    let offer = LinkOffer {
        account: account.id(),
        name: "alice".into(),
    };
    Pair {
        responder: LinkResponder::new(&code(old), offer).unwrap(),
        account,
        old,
    }
}

/// Runs the handshake with `code` from the device `seed`; the request
/// the old device read, or the error either side saw.
fn handshake(
    p: &mut Pair,
    code: &LinkCode,
    seed: u8,
) -> Result<(LinkInitiator, LinkRequest), LinkError> {
    let req = request(&p.account.id(), seed);
    let (mut init, hello) = LinkInitiator::start(code)?;
    let LinkReceived::Answer(answer) = p.responder.receive(NOW, req.device.device_id, &hello)?
    else {
        panic!("the hello is answered");
    };
    let offer = init.offer(&answer)?;
    assert_eq!(offer.account, p.account.id());
    let frame = init.request(&req)?;
    match p.responder.receive(NOW, req.device.device_id, &frame)? {
        LinkReceived::Request(r) => Ok((init, r)),
        other => panic!("expected the request, got {other:?}"),
    }
}

#[test]
fn link_code_round_trips_through_text_and_detects_damage() {
    let c = code(DeviceId([3; 32]));
    let text = c.to_string();
    assert!(text.starts_with(LINK_PREFIX));
    assert_eq!(text.parse::<LinkCode>().unwrap(), c);
    let mut damaged = text.clone().into_bytes();
    let last = damaged.len() - 1;
    damaged[last] = if damaged[last] == b'2' { b'3' } else { b'2' };
    assert_eq!(
        String::from_utf8(damaged).unwrap().parse::<LinkCode>(),
        Err(LinkCodeError::Damaged)
    );
    assert_eq!(
        "hush1abc".parse::<LinkCode>(),
        Err(LinkCodeError::MissingPrefix)
    );
}

#[test]
fn a_link_with_the_right_code_hands_over_in_order() {
    let mut p = pair();
    let (mut init, req) = {
        let c = code(p.old);
        handshake(&mut p, &c, 9)
    }
    .unwrap();
    assert_eq!(p.responder.peer(), Some(req.device.device_id));
    let list = DeviceList::sign(&p.account, NOW, vec![req.device]);
    let grant = LinkReply::Grant {
        device_list: Box::new(list),
        card: "hush1card".into(),
        account_seed: None,
        relays: vec!["/ip4/127.0.0.1/tcp/7001/p2p/x".into()],
        names: vec![DeviceName {
            device: req.device.device_id,
            name: "laptop".into(),
            linked_at_ms: NOW,
        }],
        presence: Some((
            true,
            crate::PresenceKey::from_parts(3, [9; 32]),
            PresenceSeed([6; 32]),
        )),
    };
    let frame = p.responder.reply(&grant).unwrap();
    assert_eq!(init.open(&frame).unwrap(), grant);
    for step in [
        LinkStep::Contacts { after: None },
        LinkStep::Messages {
            after: Some((p.account.id(), 42)),
        },
        LinkStep::GroupMessages {
            after: Some((GroupId([2; 32]), 7)),
        },
        LinkStep::Done {
            contacts: 1,
            messages: 2,
        },
    ] {
        let frame = init.step(&step).unwrap();
        match p
            .responder
            .receive(NOW, req.device.device_id, &frame)
            .unwrap()
        {
            LinkReceived::Step(s) => assert_eq!(s, step),
            other => panic!("expected a step, got {other:?}"),
        }
        let reply = if matches!(step, LinkStep::Done { .. }) {
            LinkReply::Finished
        } else if matches!(step, LinkStep::Contacts { .. }) {
            LinkReply::Contacts {
                items: vec![LinkContact {
                    name: "bob".into(),
                    card: "hush-card1…".into(),
                    send_receipts: true,
                    added_at_ms: NOW,
                    blocked: false,
                    verified: Some([3; 32]),
                    presence: crate::device::PresenceRecord {
                        share: false,
                        shared_epoch: 4,
                        their_key: Some((2, [5; 32])),
                        last_seen_ms: NOW - 1,
                    },
                    timer: Some((Some(3600), 77)),
                }],
                more: true,
            }
        } else if matches!(step, LinkStep::GroupMessages { .. }) {
            LinkReply::GroupMessages {
                items: vec![LinkMessage {
                    conversation: [2; 32],
                    id: 8,
                    from: p.account.id(),
                    outgoing: false,
                    text: "in the group".into(),
                    status: 3,
                    sent_at_ms: NOW,
                    stored_at_ms: NOW,
                    timer_secs: Some(60),
                    timer_change: None,
                }],
                more: false,
            }
        } else {
            LinkReply::Messages {
                items: vec![LinkMessage {
                    conversation: p.account.id().0,
                    id: 5,
                    from: p.account.id(),
                    outgoing: true,
                    text: "hi".into(),
                    status: 2,
                    sent_at_ms: NOW,
                    stored_at_ms: NOW,
                    timer_secs: None,
                    timer_change: Some(Some(86_400)),
                }],
                more: false,
            }
        };
        let frame = p.responder.reply(&reply).unwrap();
        assert_eq!(init.open(&frame).unwrap(), reply);
    }
    assert!(p.responder.is_finished());
}

#[test]
fn a_link_with_a_wrong_code_fails_on_both_sides() {
    let mut p = pair();
    let mut wrong = code(p.old);
    wrong.secret = [8; 32];
    let req = request(&p.account.id(), 9);
    let (mut init, hello) = LinkInitiator::start(&wrong).unwrap();
    let LinkReceived::Answer(answer) = p
        .responder
        .receive(NOW, req.device.device_id, &hello)
        .unwrap()
    else {
        panic!("the hello carries no key yet");
    };
    // The psk is mixed in with the third message: the offer still opens
    // (it says nothing secret), the request does not.
    init.offer(&answer).unwrap();
    let frame = init.request(&req).unwrap();
    assert!(matches!(
        p.responder.receive(NOW, req.device.device_id, &frame),
        Err(LinkError::WrongCode)
    ));
    // The right code still works afterwards: a wrong try does not spend it.
    assert!(
        {
            let c = code(p.old);
            handshake(&mut p, &c, 9)
        }
        .is_ok()
    );
}

#[test]
fn a_link_code_for_another_device_does_not_open() {
    let mut p = pair();
    let other = code(DeviceId([9; 32]));
    assert!(matches!(
        handshake(&mut p, &other, 9),
        Err(LinkError::WrongCode)
    ));
}

#[test]
fn guessing_link_codes_spends_the_code() {
    let mut p = pair();
    for guess in 0..MAX_LINK_FAILURES {
        let mut wrong = code(p.old);
        wrong.secret = [guess + 100; 32];
        assert!(handshake(&mut p, &wrong, 9).is_err());
    }
    assert!(p.responder.is_spent(NOW));
    assert!(
        {
            let c = code(p.old);
            handshake(&mut p, &c, 9)
        }
        .is_err()
    );
}

#[test]
fn a_reused_link_code_is_refused() {
    let mut p = pair();
    {
        let c = code(p.old);
        handshake(&mut p, &c, 9)
    }
    .unwrap();
    // A second device with the same code, while the first one links.
    let (_, hello) = LinkInitiator::start(&code(p.old)).unwrap();
    let second = new_device(10).0.device_id;
    assert!(p.responder.receive(NOW, second, &hello).is_err());
}

#[test]
fn an_expired_link_code_is_refused() {
    let mut p = pair();
    let (_, hello) = LinkInitiator::start(&code(p.old)).unwrap();
    let late = NOW + LINK_VALID_MS;
    assert!(matches!(
        p.responder.receive(late, new_device(9).0.device_id, &hello),
        Err(LinkError::Expired)
    ));
}

#[test]
fn a_link_request_for_a_device_the_asker_does_not_hold_is_refused() {
    let mut p = pair();
    let mut req = request(&p.account.id(), 9);
    let (mut init, hello) = LinkInitiator::start(&code(p.old)).unwrap();
    // The asker is device 11 but puts device 9's keys on its request.
    let asker = new_device(11).0.device_id;
    let LinkReceived::Answer(answer) = p.responder.receive(NOW, asker, &hello).unwrap() else {
        panic!("answered");
    };
    init.offer(&answer).unwrap();
    let frame = init.request(&req).unwrap();
    assert!(p.responder.receive(NOW, asker, &frame).is_err());

    // And a proof made for another account does not count either.
    let mut p = pair();
    let other = AccountKey::from_seed([5; 32]).id();
    let (device, key) = new_device(9);
    req.proof = device.prove(&other, &key);
    let (mut init, hello) = LinkInitiator::start(&code(p.old)).unwrap();
    let LinkReceived::Answer(answer) = p.responder.receive(NOW, device.device_id, &hello).unwrap()
    else {
        panic!("answered");
    };
    init.offer(&answer).unwrap();
    let frame = init.request(&req).unwrap();
    assert!(p.responder.receive(NOW, device.device_id, &frame).is_err());
}

#[test]
fn a_tampered_link_frame_is_refused() {
    let mut p = pair();
    let (mut init, req) = {
        let c = code(p.old);
        handshake(&mut p, &c, 9)
    }
    .unwrap();
    let mut frame = init.step(&LinkStep::Contacts { after: None }).unwrap();
    frame[0] ^= 1;
    assert!(
        p.responder
            .receive(NOW, req.device.device_id, &frame)
            .is_err()
    );
}

#[test]
fn pages_stay_under_one_noise_message() {
    let m = LinkMessage {
        conversation: [1; 32],
        id: 1,
        from: AccountId([1; 32]),
        outgoing: false,
        text: "x".repeat(MAX_TEXT_LEN),
        status: 2,
        sent_at_ms: NOW,
        stored_at_ms: NOW,
        timer_secs: Some(1),
        timer_change: None,
    };
    let items = vec![m; 10];
    let n = messages_page_len(&items);
    assert!(n >= 1);
    let reply = LinkReply::Messages {
        items: items[..n].to_vec(),
        more: true,
    };
    assert!(reply.to_bytes().len() + TAG_LEN <= MAX_LINK_FRAME);
}

#[test]
fn group_items_round_trip_and_pages_fit_a_noise_message() {
    let group = GroupId([4; 32]);
    let items: Vec<LinkGroupItem> = [
        LinkGroupKind::Record { left: false },
        LinkGroupKind::Op(vec![7; crate::MAX_OP_LEN]),
        LinkGroupKind::PublishKey {
            epoch: [1; 32],
            secret: [2; 32],
        },
        LinkGroupKind::Session {
            account: AccountId([3; 32]),
            device: DeviceId([5; 32]),
            exported: vec![9; 229],
        },
    ]
    .into_iter()
    .cycle()
    .take(40)
    .enumerate()
    .map(|(i, kind)| LinkGroupItem {
        group,
        index: i as u32,
        kind,
    })
    .collect();
    let n = group_items_page_len(&items);
    let reply = LinkReply::Groups {
        items: items[..n].to_vec(),
        more: true,
    };
    let bytes = reply.to_bytes();
    assert!(bytes.len() + TAG_LEN <= MAX_LINK_FRAME);
    assert_eq!(LinkReply::from_bytes(&bytes).unwrap(), reply);
    let step = LinkStep::Groups {
        after: Some((group, 3)),
    };
    assert_eq!(LinkStep::from_bytes(&step.to_bytes()).unwrap(), step);
    // The secret never shows in a log line.
    assert!(!format!("{:?}", items[2]).contains("2, 2"));
}
