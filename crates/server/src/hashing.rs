//! File hashes for HASH (draft-bryan-ftpext-hash): the algorithms a client
//! may pick with OPTS HASH, computed incrementally over a file's bytes.

use sha1::Digest as _;

/// A hash algorithm, by its HASH name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    /// SHA-256, the default.
    Sha256,
    /// SHA-1, which the draft requires.
    Sha1,
    /// SHA-512.
    Sha512,
    /// MD5, for old clients.
    Md5,
    /// CRC32.
    Crc32,
}

impl HashAlgorithm {
    /// Every algorithm, in FEAT order.
    pub const ALL: [HashAlgorithm; 5] =
        [HashAlgorithm::Sha1, HashAlgorithm::Sha256, HashAlgorithm::Sha512, HashAlgorithm::Md5, HashAlgorithm::Crc32];

    /// The name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "SHA-256",
            HashAlgorithm::Sha1 => "SHA-1",
            HashAlgorithm::Sha512 => "SHA-512",
            HashAlgorithm::Md5 => "MD5",
            HashAlgorithm::Crc32 => "CRC32",
        }
    }

    /// Looks an algorithm up by name, case-insensitively.
    pub fn parse(name: &str) -> Option<HashAlgorithm> {
        HashAlgorithm::ALL.into_iter().find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// A fresh hasher.
    pub fn hasher(self) -> Hasher {
        match self {
            HashAlgorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            HashAlgorithm::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            HashAlgorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
            HashAlgorithm::Md5 => Hasher::Md5(md5::Md5::new()),
            HashAlgorithm::Crc32 => Hasher::Crc32(crc32fast::Hasher::new()),
        }
    }
}

/// An incremental hash.
pub enum Hasher {
    /// SHA-256.
    Sha256(sha2::Sha256),
    /// SHA-1.
    Sha1(sha1::Sha1),
    /// SHA-512.
    Sha512(sha2::Sha512),
    /// MD5.
    Md5(md5::Md5),
    /// CRC32.
    Crc32(crc32fast::Hasher),
}

impl Hasher {
    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha1(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
            Hasher::Md5(h) => h.update(bytes),
            Hasher::Crc32(h) => h.update(bytes),
        }
    }

    /// The hash, lower-case hex.
    pub fn finish_hex(self) -> String {
        let bytes: Vec<u8> = match self {
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
            Hasher::Md5(h) => h.finalize().to_vec(),
            Hasher::Crc32(h) => h.finalize().to_be_bytes().to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        let hex = |a: HashAlgorithm| {
            let mut h = a.hasher();
            h.update(b"abc");
            h.finish_hex()
        };
        assert_eq!(hex(HashAlgorithm::Sha256), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(hex(HashAlgorithm::Sha1), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(hex(HashAlgorithm::Md5), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(hex(HashAlgorithm::Crc32), "352441c2");
        assert!(hex(HashAlgorithm::Sha512).starts_with("ddaf35a193617aba"));
        assert_eq!(HashAlgorithm::parse("sha-256"), Some(HashAlgorithm::Sha256));
        assert_eq!(HashAlgorithm::parse("whirlpool"), None);
    }
}
