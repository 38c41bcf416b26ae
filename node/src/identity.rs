//! The device's identity: account key, device key, Olm keys, and the
//! contact card made from them.

pub use hush_host::create_private_file;

use std::sync::Arc;

use hush_protocol::{
    AccountId, AccountKey, ContactCard, DeviceId, DeviceKeys, DeviceList, MAX_CARD_ADDRESSES,
    MAX_NAME_LEN, MailboxSecret, OlmDevice, Wire,
};
use libp2p::identity::Keypair;

use crate::error::NodeError;
use crate::home::Home;
use crate::network;
use crate::records::IdentityRecord;
use crate::store::Store;

/// Everything the node knows about itself, loaded from the identity record.
pub struct Me {
    pub name: String,
    /// What makes the card: the account key, or, on a device linked
    /// without it, the card a device holding it signed.
    pub signer: Signer,
    pub account: AccountId,
    pub keypair: Keypair,
    pub device: DeviceKeys,
    pub device_list: DeviceList,
    pub pickle_key: [u8; 32],
    /// Opens what senders sealed to this device's mailboxes.
    pub mailbox: Arc<MailboxSecret>,
    /// The home relays, as given with `--relay` or found through the DHT
    /// (full `/p2p/` addresses).
    pub relays: Vec<String>,
    /// Whether they were found through the DHT (else given).
    pub relays_found: bool,
    /// Why none were found through the DHT, when a search at start failed.
    pub relay_search: Option<String>,
    /// The home relays differ from the ones saved at the last start (given
    /// anew with `--relay`): contacts are told.
    pub relays_changed: bool,
    /// The device's Ed25519 seed (its libp2p key): signs presence records.
    pub device_secret: [u8; 32],
}

impl std::fmt::Debug for Me {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Me")
            .field("name", &self.name)
            .field("account", &self.account)
            .field("device", &self.device.device_id)
            .finish_non_exhaustive()
    }
}

/// What signs this device's card.
pub enum Signer {
    /// The account key: signs device lists, cards and group changes.
    Key(AccountKey),
    /// A device linked without the account key shows the account's card as
    /// a device holding the key signed it.
    Card(ContactCard),
}

/// The device's own entry on its account's list, and its proof.
pub fn own_entry(
    record: &IdentityRecord,
    olm: &OlmDevice,
) -> Result<(DeviceKeys, [u8; 64]), NodeError> {
    let keypair = network::device_keypair(record.device_secret).map_err(NodeError::Identity)?;
    let device_id = network::device_id(&keypair)
        .ok_or_else(|| NodeError::Identity(std::io::Error::other("device key is not Ed25519")))?;
    let device = DeviceKeys {
        device_id,
        olm_ed25519: olm.ed25519_key(),
        olm_curve25519: olm.curve25519_key(),
        mailbox_key: MailboxSecret::derive(&record.device_secret).public_key(),
    };
    // The device signs its own entry: nobody else's card can claim it.
    let proof = device
        .prove_with_secret(&record.account, &record.device_secret)
        .ok_or_else(|| {
            NodeError::Identity(std::io::Error::other(
                "the device key does not match the device id",
            ))
        })?;
    Ok((device, proof))
}

impl Me {
    pub fn load(record: &IdentityRecord, olm: &OlmDevice) -> Result<Self, NodeError> {
        let account_key = record.account_seed.map(AccountKey::from_seed);
        if account_key
            .as_ref()
            .is_some_and(|k| k.id() != record.account)
        {
            return Err(NodeError::Identity(std::io::Error::other(
                "the stored account key is not the account's",
            )));
        }
        let keypair = network::device_keypair(record.device_secret).map_err(NodeError::Identity)?;
        let (device, proof) = own_entry(record, olm)?;
        let broken = |what: &str| {
            NodeError::Identity(std::io::Error::other(format!(
                "the stored device list {what}; the home is damaged"
            )))
        };
        let device_list = if record.device_list.is_empty() {
            let key = account_key
                .as_ref()
                .ok_or_else(|| broken("is missing and the account key is not here"))?;
            DeviceList::sign_proven(
                key,
                record.device_list_issued_at_ms,
                vec![device],
                vec![proof],
            )
        } else {
            let list = DeviceList::from_bytes(&record.device_list)
                .map_err(|_| broken("does not decode"))?;
            if list.verify().is_err() || list.account != record.account {
                return Err(broken("is not signed by the account"));
            }
            list
        };
        let signer = match account_key {
            Some(key) => Signer::Key(key),
            None => {
                let card = record
                    .card
                    .parse::<ContactCard>()
                    .map_err(|_| broken("came without a card that verifies"))?;
                Signer::Card(card)
            }
        };
        Ok(Self {
            name: record.name.clone(),
            account: record.account,
            signer,
            keypair,
            device,
            device_list,
            pickle_key: record.pickle_key,
            mailbox: Arc::new(MailboxSecret::derive(&record.device_secret)),
            relays: Vec::new(),
            relays_found: false,
            relay_search: None,
            relays_changed: false,
            device_secret: record.device_secret,
        })
    }

    pub fn device_id(&self) -> DeviceId {
        self.device.device_id
    }

    /// The contact card, listing up to [`MAX_CARD_ADDRESSES`] addresses.
    /// A device without the account key shows the card a device with it
    /// signed (its addresses and relays).
    pub fn card(&self, addresses: &[String]) -> ContactCard {
        match &self.signer {
            Signer::Key(key) => self.sign_card(key, &self.device_list, addresses),
            Signer::Card(card) => card.clone(),
        }
    }

    /// The card for `list`, signed with the account key (`None` without it).
    pub fn card_with(&self, list: &DeviceList, addresses: &[String]) -> Option<ContactCard> {
        Some(self.sign_card(self.account_key()?, list, addresses))
    }

    fn sign_card(&self, key: &AccountKey, list: &DeviceList, addresses: &[String]) -> ContactCard {
        ContactCard::sign(
            key,
            self.name.clone(),
            list.clone(),
            addresses.iter().take(MAX_CARD_ADDRESSES).cloned().collect(),
            self.relays
                .iter()
                .take(MAX_CARD_ADDRESSES)
                .cloned()
                .collect(),
        )
    }

    /// The account key, if this device holds it.
    pub fn account_key(&self) -> Option<&AccountKey> {
        match &self.signer {
            Signer::Key(key) => Some(key),
            Signer::Card(_) => None,
        }
    }
}

/// Checks a display or contact name.
pub fn validate_name(name: &str) -> Result<(), NodeError> {
    let reason = if name.trim().is_empty() {
        "it is empty"
    } else if name.len() > MAX_NAME_LEN {
        "it is longer than 64 bytes"
    } else if name.chars().any(hush_protocol::text::is_unsafe_in_name) {
        "it contains control or invisible format characters (bidi overrides and the like)"
    } else if name != name.trim() {
        "it starts or ends with spaces"
    } else {
        return Ok(());
    };
    Err(NodeError::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

/// Creates a new identity in `home`. Fails if one exists: an identity is
/// never overwritten.
pub fn init(home: &Home, name: &str, now_ms: u64) -> Result<AccountId, NodeError> {
    validate_name(name)?;
    home.create().map_err(|source| NodeError::Home {
        path: home.dir().to_owned(),
        source,
    })?;
    create_private_file(&home.db_path()).map_err(|source| NodeError::Home {
        path: home.db_path(),
        source,
    })?;
    let store = Store::open(&home.db_path(), &home.db_key()?)?;
    if store.has_identity()? {
        return Err(NodeError::AlreadyInitialized {
            path: home.dir().to_owned(),
        });
    }
    let seed: [u8; 32] = rand::random();
    let record = IdentityRecord {
        name: name.to_owned(),
        account: AccountKey::from_seed(seed).id(),
        account_seed: Some(seed),
        device_secret: rand::random(),
        pickle_key: rand::random(),
        device_list_issued_at_ms: now_ms,
        created_at_ms: now_ms,
        device_list: Vec::new(),
        card: String::new(),
        devices: Vec::new(),
        pushed_list_at_ms: now_ms,
    };
    let mut olm = OlmDevice::new();
    let pickle = olm
        .take_changes(&record.pickle_key)
        .account
        .unwrap_or_default();
    store.create_identity(&record, &pickle)?;
    Ok(record.account)
}

/// The card of a home whose node is not running (from the last known addresses).
pub fn offline_card(home: &Home) -> Result<ContactCard, NodeError> {
    let store = Store::open(&home.db_path(), &home.db_key()?)?;
    let record = store.identity()?;
    let olm = OlmDevice::restore(&store.olm_account()?, [], &record.pickle_key)?;
    let mut me = Me::load(&record, &olm)?;
    me.relays = store.relays()?;
    Ok(me.card(&store.listen_addresses()?))
}

/// The account key of a home whose node is stopped (`None` on a device
/// linked without it): it signs the account's device lists and cards.
/// Never logged, never sent.
pub fn account_key(home: &Home) -> Result<Option<AccountKey>, NodeError> {
    let store = Store::open(&home.db_path(), &home.db_key()?)?;
    Ok(store.identity()?.account_seed.map(AccountKey::from_seed))
}

pub fn restrict_permissions(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        tracing::warn!(path = %path.display(), error = %e, "could not restrict file permissions");
    }
}
