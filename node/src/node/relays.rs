//! Which home relays a node starts with: the ones given (`--relay`,
//! saved), the saved ones, or, with none and `--bootstrap`, the ones the
//! DHT offers (`crate::discovery`).

use libp2p::Multiaddr;

use super::{MAX_HOME_RELAYS, NodeConfig};
use crate::error::NodeError;
use crate::identity::Me;
use crate::store::{Durability, Op, Store};

/// Sets `me`'s home relays (and how they were chosen) for this run.
pub(super) async fn choose(
    store: &Store,
    me: &mut Me,
    config: &NodeConfig,
) -> Result<(), NodeError> {
    let saved = store.relays()?;
    me.relays = home_relays(store, &config.relays)?;
    me.relays_changed = !saved.is_empty() && saved != me.relays;
    me.relays_found = config.relays.is_empty() && store.relays_found()?;
    if !me.relays.is_empty() || config.bootstrap.is_empty() {
        return Ok(());
    }
    let mailbox = hush_protocol::MailboxId::of(&me.device_id());
    let found =
        crate::discovery::find_home_relays(&config.bootstrap, mailbox, MAX_HOME_RELAYS).await;
    if found.is_empty() {
        let why = "no announced relay that takes new mailboxes answered through the DHT: \
                   offline mail cannot reach this device; the next start searches again (or \
                   give one with --relay)";
        tracing::warn!("{why}");
        me.relay_search = Some(why.to_owned());
    } else {
        store.apply(
            vec![Op::PutRelays(found.clone()), Op::PutRelaysFound(true)],
            Durability::Now,
        )?;
        me.relays = found;
        me.relays_found = true;
    }
    Ok(())
}

/// The home relays to use: those given (checked, then saved) or the saved ones.
fn home_relays(store: &Store, given: &[Multiaddr]) -> Result<Vec<String>, NodeError> {
    if given.is_empty() {
        return Ok(store.relays()?);
    }
    if given.len() > MAX_HOME_RELAYS {
        tracing::warn!(
            given = given.len(),
            used = MAX_HOME_RELAYS,
            "more home relays given than are used"
        );
    }
    let mut relays: Vec<String> = Vec::new();
    for addr in given.iter().take(MAX_HOME_RELAYS) {
        if crate::network::peer_in(addr).is_none() {
            return Err(NodeError::InvalidRelayAddress {
                addr: addr.to_string(),
                reason: "it has no /p2p/<relay id> part".into(),
            });
        }
        if !relays.contains(&addr.to_string()) {
            relays.push(addr.to_string());
        }
    }
    store.apply(
        vec![Op::PutRelays(relays.clone()), Op::PutRelaysFound(false)],
        Durability::Now,
    )?;
    Ok(relays)
}
