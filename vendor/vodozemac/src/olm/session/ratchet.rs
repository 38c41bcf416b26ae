// Copyright 2021 Damir Jelić
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
//     http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

use std::{fmt::Debug, sync::OnceLock};

use matrix_pickle::Decode;
use serde::{Deserialize, Serialize};
use x25519_dalek::SharedSecret;

use super::{
    chain_key::RemoteChainKey,
    root_key::{RemoteRootKey, RootKey},
};
use crate::{Curve25519PublicKey, types::Curve25519SecretKey};

/// A ratchet key which we created ourselves.
///
/// A new ratchet key is created each time the conversation changes direction,
/// and used to calculate the [root key](RootKey) for the new sender chain.
/// The public part of the sender's ratchet key is sent to the recipient in each
/// message.
///
/// Since this is *our own* key, we have both the secret and public parts of the
/// key.
///
/// The [Olm spec](https://gitlab.matrix.org/matrix-org/olm/blob/master/docs/olm.md) refers to
/// ratchet keys as `T`<sub>`i`</sub>.
#[derive(Serialize, Deserialize, Clone)]
#[serde(transparent)]
pub(super) struct RatchetKey(pub(super) Curve25519SecretKey);

/// The public part of a [`RatchetKey`].
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct RatchetPublicKey(Curve25519PublicKey);

/// A ratchet key which was created by the other side.
///
/// See [`RatchetKey`] for explanation about ratchet keys in general. Since this
/// is the other side's key, we have only the public part of the key.
#[derive(Clone, Copy, Hash, PartialEq, Eq, Serialize, Deserialize, Decode)]
#[serde(transparent)]
pub(super) struct RemoteRatchetKey(pub(super) Curve25519PublicKey);

impl Debug for RemoteRatchetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl RatchetKey {
    pub(super) fn new() -> Self {
        Self(Curve25519SecretKey::new())
    }

    pub(super) fn diffie_hellman(&self, other: &RemoteRatchetKey) -> Option<SharedSecret> {
        self.0.diffie_hellman(&other.0)
    }
}

impl Default for RatchetKey {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Curve25519SecretKey> for RatchetKey {
    fn from(key: Curve25519SecretKey) -> Self {
        Self(key)
    }
}

impl From<[u8; 32]> for RatchetPublicKey {
    fn from(bytes: [u8; 32]) -> Self {
        RatchetPublicKey(Curve25519PublicKey::from(bytes))
    }
}

impl From<[u8; 32]> for RemoteRatchetKey {
    fn from(bytes: [u8; 32]) -> Self {
        RemoteRatchetKey(Curve25519PublicKey::from(bytes))
    }
}

impl From<Curve25519PublicKey> for RemoteRatchetKey {
    fn from(key: Curve25519PublicKey) -> Self {
        RemoteRatchetKey(key)
    }
}

impl AsRef<Curve25519PublicKey> for RatchetPublicKey {
    fn as_ref(&self) -> &Curve25519PublicKey {
        &self.0
    }
}

impl From<&RatchetKey> for RatchetPublicKey {
    fn from(r: &RatchetKey) -> Self {
        RatchetPublicKey(Curve25519PublicKey::from(&r.0))
    }
}

/// Information about the root key ratchet, while our sender chain is active.
///
/// We only have one of these while the double ratchet is "active" - ie, while
/// we are encrypting messages. It stores the information necessary to calculate
/// the *next* root key; in particular, the root key of our active chain
/// `R`<sub>`i`</sub>, and our own ratchet key `T`<sub>`i`</sub>.
#[derive(Serialize, Deserialize, Clone)]
pub(super) struct Ratchet {
    pub(super) root_key: RootKey,
    pub(super) ratchet_key: RatchetKey,
    /// The public half of `ratchet_key`, computed once: every message of the
    /// chain carries it, and computing it is a scalar multiplication
    /// (hush's patch; not pickled, so pickles are unchanged).
    #[serde(skip)]
    public_key: OnceLock<RatchetPublicKey>,
}

impl Ratchet {
    pub(super) fn new(root_key: RootKey) -> Self {
        let ratchet_key = RatchetKey::new();

        Self { root_key, ratchet_key, public_key: OnceLock::new() }
    }

    pub(super) const fn new_with_ratchet_key(root_key: RootKey, ratchet_key: RatchetKey) -> Self {
        Self { root_key, ratchet_key, public_key: OnceLock::new() }
    }

    /// The public half of our ratchet key, as every message of this chain
    /// carries it.
    pub(super) fn public_key(&self) -> RatchetPublicKey {
        *self.public_key.get_or_init(|| RatchetPublicKey::from(&self.ratchet_key))
    }

    pub(super) fn advance(
        &self,
        remote_key: RemoteRatchetKey,
    ) -> Option<(RemoteRootKey, RemoteChainKey)> {
        let (remote_root_key, remote_chain_key) =
            self.root_key.advance(&self.ratchet_key, &remote_key)?;

        Some((remote_root_key, remote_chain_key))
    }

    pub(super) const fn ratchet_key(&self) -> &RatchetKey {
        &self.ratchet_key
    }
}

#[cfg(test)]
mod test {
    use super::{Ratchet, RatchetKey};
    use crate::{
        Curve25519SecretKey,
        olm::{RatchetPublicKey, session::root_key::RootKey},
    };

    #[test]
    fn ratchet_key_from_curve_25519_secret_key() {
        let bytes = b"aaaaaaaaaaaaaaawaaaaaaaaaaaaaaaa";
        let key = RatchetKey::from(Curve25519SecretKey::from_slice(bytes));
        assert_eq!(key.0.to_bytes().as_ref(), bytes);
    }

    #[test]
    fn cached_public_key_is_the_secret_keys_and_survives_a_pickle() {
        let ratchet = Ratchet::new(RootKey::new(Box::new([3u8; 32])));
        let computed = RatchetPublicKey::from(ratchet.ratchet_key());
        assert_eq!(ratchet.public_key(), computed);
        // Asked again, the cached key; and a pickle carries no cache.
        assert_eq!(ratchet.public_key(), computed);
        let pickled = serde_json::to_string(&ratchet).unwrap();
        let unpickled: Ratchet = serde_json::from_str(&pickled).unwrap();
        assert_eq!(unpickled.public_key(), computed);
        assert_eq!(pickled, serde_json::to_string(&unpickled).unwrap());
    }

    #[test]
    fn ratchet_public_key_from_bytes() {
        let bytes = b"aaaaaaaaaaaaaaawaaaaaaaaaaaaaaaa";
        let key = RatchetPublicKey::from(*bytes);
        assert_eq!(key.0.to_bytes().as_slice(), bytes);
    }
}
