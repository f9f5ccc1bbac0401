//! Who is on the other end of a connection: the listener it arrived on and, over mTLS, the
//! verified client certificate. Shared by the router and the protocol handlers; does not
//! accept connections nor answer requests.

use x509_parser::prelude::FromDer;

use crate::pki;

/// Which listener a connection arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// HTTPS, no client certificate requested; one-time tokens authenticate.
    Token,
    /// HTTPS, a client certificate signed by the client CA is required.
    Mtls,
    /// Plain HTTP, loopback, for tests and operators.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Token => "token-secured",
            Role::Mtls => "mtls",
            Role::Admin => "admin",
        }
    }
}

/// The verified client certificate of an mTLS connection.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub fingerprint: String,
    pub common_name: String,
}

impl Peer {
    pub(crate) fn from_der(der: &[u8]) -> Self {
        let common_name = x509_parser::certificate::X509Certificate::from_der(der)
            .ok()
            .and_then(|(_, cert)| {
                cert.subject()
                    .iter_common_name()
                    .next()
                    .and_then(|cn| cn.as_str().ok())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        Peer {
            fingerprint: pki::fingerprint(der),
            common_name,
        }
    }
}
