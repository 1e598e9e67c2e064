//! Randomness from the operating system: passwords and certificate serial numbers.

use anyhow::Context as _;

const PASSWORD_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A password of `length` letters and digits (about 5.95 bits each), safe in any connection
/// string or SQL literal.
pub fn password(length: usize) -> anyhow::Result<String> {
    let mut out = String::with_capacity(length);
    let mut buffer = [0u8; 64];
    while out.len() < length {
        getrandom::fill(&mut buffer).context("reading random bytes from the operating system")?;
        // Rejection sampling keeps every character equally likely.
        let limit = 256 - 256 % PASSWORD_ALPHABET.len();
        for byte in buffer {
            if usize::from(byte) < limit && out.len() < length {
                out.push(char::from(
                    PASSWORD_ALPHABET[usize::from(byte) % PASSWORD_ALPHABET.len()],
                ));
            }
        }
    }
    Ok(out)
}

/// A certificate serial number: 16 random bytes, positive, of fixed length (RFC 5280 allows up
/// to 20 octets; 126 random bits make a collision practically impossible).
pub fn serial() -> anyhow::Result<[u8; 16]> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).context("reading random bytes from the operating system")?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_have_the_length_and_alphabet_asked_for_and_differ() {
        let a = password(32).unwrap();
        let b = password(32).unwrap();
        assert_eq!(a.len(), 32);
        assert!(
            a.bytes().all(|c| PASSWORD_ALPHABET.contains(&c)),
            "{}",
            a.len()
        );
        assert_ne!(a, b);
    }

    #[test]
    fn serials_are_positive_sixteen_bytes_and_differ() {
        let a = serial().unwrap();
        assert_eq!(a[0] & 0xc0, 0x40, "positive, no leading zero byte");
        assert_ne!(a, serial().unwrap());
    }
}
