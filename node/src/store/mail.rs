//! What the store keeps for mail at relays: contact devices' deposit
//! rights and pairwise mailboxes for us, our fallback key bundle, and when
//! every home relay was last read to the end (the writes are ops:
//! `PutRight`, `PutGrant`, `PutFallback`, `PutDrained`), whether the
//! home relays were found through the DHT (`PutRelaysFound`), and contact
//! devices' statements of their own home relays (`PutDeviceRelays`).

use hush_protocol::{DepositRight, DeviceId, HomeRelays, MailboxGrant, Wire};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::{
    DEPOSIT_RIGHTS, DEVICE_RELAYS, DRAINED_KEY, FALLBACK_KEY, FALLBACK_MADE_KEY, MAILBOX_GRANTS,
    RELAYS_FOUND_KEY, Store, StoreError,
};

impl Store {
    pub fn fallback_bundle(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.meta(FALLBACK_KEY)
    }

    /// When the fallback key was made (`None` before that was recorded).
    pub fn fallback_made_at(&self) -> Result<Option<u64>, StoreError> {
        self.meta_u64(FALLBACK_MADE_KEY)
    }

    /// When every home relay was last read to the end, if ever.
    pub fn drained_at(&self) -> Result<Option<u64>, StoreError> {
        self.meta_u64(DRAINED_KEY)
    }

    /// Whether the home relays were found through the DHT.
    pub fn relays_found(&self) -> Result<bool, StoreError> {
        Ok(self.meta(RELAYS_FOUND_KEY)?.is_some())
    }

    /// Contact devices' deposit rights for us (ones that no longer decode
    /// are left out: the contact sends its right again).
    pub fn rights(&self) -> Result<Vec<(DeviceId, DepositRight)>, StoreError> {
        self.by_device(DEPOSIT_RIGHTS)
    }

    /// Contact devices' pairwise mailboxes for us (ones that no longer
    /// decode are left out: the contact sends them again).
    pub fn grants(&self) -> Result<Vec<(DeviceId, MailboxGrant)>, StoreError> {
        self.by_device(MAILBOX_GRANTS)
    }

    /// Contact devices' newest statements of their home relays (ones that
    /// no longer decode are left out: the next record says it again).
    pub fn device_relays(&self) -> Result<Vec<(DeviceId, HomeRelays)>, StoreError> {
        self.by_device(DEVICE_RELAYS)
    }

    /// A `u64` kept big-endian under a meta key.
    fn meta_u64(&self, key: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .meta(key)?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map(u64::from_be_bytes))
    }

    /// Every row of a table of wire values by device id that decodes.
    fn by_device<T: Wire>(
        &self,
        definition: TableDefinition<&[u8; 32], &[u8]>,
    ) -> Result<Vec<(DeviceId, T)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(definition)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (device, bytes) = row?;
            if let Ok(value) = T::from_bytes(bytes.value()) {
                out.push((DeviceId(*device.value()), value));
            }
        }
        Ok(out)
    }
}
