//! The handshake object `verify` delivers: proof that the whole keyless chain works, without
//! reading anything back.

use crate::config::Destination;
use crate::delivery::json_api::ObjectSpec;

/// The handshake object: small, uniquely named, saying who sent it and when. Delivering it
/// proves the whole keyless chain works, without reading anything back.
pub fn handshake(
    destination: &Destination,
    now: time::OffsetDateTime,
    random: u64,
) -> (ObjectSpec, Vec<u8>) {
    let stamp = crate::sigv4::format_amz_date(now);
    let name = format!(
        "{}.wif-push/handshake-{stamp}-{:08x}.txt",
        destination.prefix, random as u32
    );
    let body = format!(
        "wif-push handshake\naudience: {}\nservice account: {}\nsent: {stamp}\n",
        destination.federation.audience,
        destination
            .federation
            .service_account
            .as_deref()
            .unwrap_or("(federated principal)")
    );
    let spec = ObjectSpec {
        name,
        size: Some(body.len() as u64),
        content_type: "text/plain; charset=utf-8".into(),
        metadata: [("wif-push".to_owned(), "handshake".to_owned())].into(),
        expected_crc32c: None,
        session: None,
    };
    (spec, body.into_bytes())
}
