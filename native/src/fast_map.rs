//! The hash map every native part uses: aHash instead of std's SipHash. Keys here are
//! field names and field values from logs being read, not attacker-chosen table sizes,
//! and SipHash over long values (PowerShell's ContextInfo, 5.7 KB each) cost more than
//! the work the lookups guard.

pub type FastMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
