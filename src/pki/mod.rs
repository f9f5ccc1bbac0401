//! The public-key material of one identity, and nothing about how it travels or where
//! it is stored: keys and CSRs (`keys`), certificate facts (`x509`), the connector's
//! subject strings (`subject`), the checks a returned certificate must pass (`verify`),
//! and the one-time token that is kept out of logs and wiped (`secret`).

pub mod keys;
pub mod secret;
pub mod subject;
pub mod verify;
pub mod x509;
