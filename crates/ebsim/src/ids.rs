//! Identifiers in the service's formats: request ids, environment ids, instance ids.

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The OS source never fails on Linux; a zeroed id would still be well-formed.
    let _ = getrandom::fill(&mut b);
    b
}

/// A random UUID (v4), as request ids are.
pub fn request_id() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// `e-` and 10 lowercase alphanumerics.
pub fn environment_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let b = random_bytes::<10>();
    let tail: String = b.iter().map(|x| ALPHABET[*x as usize % ALPHABET.len()] as char).collect();
    format!("e-{tail}")
}

/// `i-` and 17 lowercase hex digits.
pub fn instance_id() -> String {
    let b = random_bytes::<9>();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("i-{}", &h[..17])
}

/// A short random hex suffix for container names.
pub fn short_suffix() -> String {
    random_bytes::<4>().iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let r = request_id();
        assert_eq!(r.len(), 36);
        assert_eq!(&r[14..15], "4");
        assert_ne!(r, request_id());
        let e = environment_id();
        assert_eq!(e.len(), 12);
        assert!(e[2..].chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        let i = instance_id();
        assert_eq!(i.len(), 19);
        assert!(i[2..].chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }
}
