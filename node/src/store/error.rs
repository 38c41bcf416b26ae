//! What can go wrong opening, reading or writing the store.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error(
        "another hush node is already using this home folder (only one node may run per home); stop it first"
    )]
    AlreadyOpen,
    #[error("the database could not be opened: {0}")]
    Open(#[source] redb::DatabaseError),
    #[error("a database transaction failed: {0}")]
    Transaction(#[from] redb::TransactionError),
    #[error("a database table could not be opened: {0}")]
    Table(#[from] redb::TableError),
    #[error("a database read or write failed: {0}")]
    Storage(#[from] redb::StorageError),
    #[error("a database commit failed: {0}")]
    Commit(#[from] redb::CommitError),
    #[error("a stored {what} record is corrupt: {source}")]
    Corrupt {
        what: &'static str,
        #[source]
        source: postcard::Error,
    },
    #[error("this home folder has no identity yet: run `hush init --name NAME` first")]
    NoIdentity,
    #[error(
        "the write-ahead log beside the database could not be read or written: {0}; check the disk and the home folder's permissions"
    )]
    Log(#[source] std::io::Error),
    #[error("the database cannot be opened: {0}")]
    Sealed(#[from] hush_host::sealed_db::SealedDbError),
    #[error(
        "a write-ahead log record does not open with the database key: the log was changed outside hush or is damaged"
    )]
    LogDamaged,
    #[error("the database could not be sealed at rest: {0}")]
    Migrate(#[source] std::io::Error),
    #[error(
        "the search index is damaged ({0}); this is a bug in hush or the database was changed outside it: please report it"
    )]
    IndexDamaged(&'static str),
    #[error(
        "this home was last used by a newer hush (database format {found}; this hush reads up to {supported}): upgrade hush to open it"
    )]
    TooNew { found: u32, supported: u32 },
}

impl From<redb::DatabaseError> for StoreError {
    fn from(e: redb::DatabaseError) -> Self {
        match e {
            redb::DatabaseError::DatabaseAlreadyOpen => Self::AlreadyOpen,
            other => Self::Open(other),
        }
    }
}
