//! Lease table: pure bookkeeping of bound, offered and declined addresses
//! (RFC 2131 §4.3). Time is passed in as Unix seconds; nothing here reads a
//! clock or touches a file.
//!
//! The decision core reads the table and returns [`LeaseChange`]s; the driver
//! applies them with [`LeaseTable::apply`] and makes the durable ones
//! ([`LeaseChange::is_durable`]) durable before it sends the reply.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use serde::Serialize;

use super::config::Pool;
use super::packet::Mac;

/// Seconds since the Unix epoch.
pub type Now = u64;

/// Most addresses one free-address search looks at: a DISCOVER costs at
/// most this many lookups, even in a huge, full pool.
pub const MAX_SCAN: usize = 65_536;

/// Expiry of an infinite lease.
pub const NEVER: Now = u64::MAX;

/// State of an address in the durable table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseState {
    /// Acknowledged to a client.
    Bound,
    /// A client said the address is in use (DHCPDECLINE): quarantined.
    Declined,
}

/// One durable lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub ip: Ipv4Addr,
    pub state: LeaseState,
    /// Client identity (opt 61 or `0x01 + MAC`); empty when declined.
    pub client_id: Vec<u8>,
    pub mac: Mac,
    /// Unix seconds; [`NEVER`] for infinite leases.
    pub expires: Now,
    pub hostname: Option<String>,
}

/// A short-lived offer (not durable).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Offer {
    client_id: Vec<u8>,
    until: Now,
}

/// What the core asks the table to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseChange {
    /// Hold `ip` for `client_id` until `until` (DHCPOFFER; volatile).
    Offer {
        ip: Ipv4Addr,
        client_id: Vec<u8>,
        until: Now,
    },
    /// Bind (DHCPACK): durable before the ACK leaves.
    Bind(Lease),
    /// The client gave the address back (DHCPRELEASE).
    Free { ip: Ipv4Addr },
    /// Quarantine `ip` until `until` (DHCPDECLINE).
    Decline { ip: Ipv4Addr, mac: Mac, until: Now },
    /// Forget the client's offer (it chose another server).
    Withdraw { client_id: Vec<u8> },
}

impl LeaseChange {
    /// Must reach the lease file before any reply of the same batch is sent?
    pub fn is_durable(&self) -> bool {
        matches!(
            self,
            LeaseChange::Bind(_) | LeaseChange::Free { .. } | LeaseChange::Decline { .. }
        )
    }
}

/// A lease as shown by `GET /leases`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseInfo {
    pub ip: Ipv4Addr,
    pub mac: String,
    pub state: LeaseState,
    /// Unix seconds; `None` for infinite leases.
    pub expires: Option<Now>,
    pub hostname: Option<String>,
}

/// The table.
#[derive(Debug, Default, Clone)]
pub struct LeaseTable {
    leases: BTreeMap<Ipv4Addr, Lease>,
    by_client: HashMap<Vec<u8>, Ipv4Addr>,
    offers: HashMap<Ipv4Addr, Offer>,
    offer_by_client: HashMap<Vec<u8>, Ipv4Addr>,
    /// Where the next free-address scan starts (last address handed out).
    hint: u32,
}

impl LeaseTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// The durable lease at `ip`, live or expired.
    pub fn get(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.leases.get(&ip)
    }

    /// The client's bound lease (live or expired), if any.
    pub fn bound_to(&self, client_id: &[u8]) -> Option<&Lease> {
        let ip = self.by_client.get(client_id)?;
        self.leases
            .get(ip)
            .filter(|l| l.state == LeaseState::Bound && l.client_id == client_id)
    }

    /// The address currently offered to the client, if the offer still holds.
    pub fn offered_to(&self, client_id: &[u8], now: Now) -> Option<Ipv4Addr> {
        let ip = *self.offer_by_client.get(client_id)?;
        self.offers
            .get(&ip)
            .filter(|o| o.client_id == client_id && o.until > now)
            .map(|_| ip)
    }

    /// May `ip` be given to `client_id` now? Free, expired, or already theirs;
    /// not quarantined and not held for another client.
    pub fn available(&self, ip: Ipv4Addr, client_id: &[u8], now: Now) -> bool {
        let lease_ok = match self.leases.get(&ip) {
            None => true,
            Some(l) if l.expires <= now => true,
            Some(l) => l.state == LeaseState::Bound && l.client_id == client_id,
        };
        let offer_ok = match self.offers.get(&ip) {
            None => true,
            Some(o) => o.until <= now || o.client_id == client_id,
        };
        lease_ok && offer_ok
    }

    /// Is `ip` actively bound to a different client?
    pub fn bound_to_other(&self, ip: Ipv4Addr, client_id: &[u8], now: Now) -> bool {
        self.leases.get(&ip).is_some_and(|l| {
            l.expires > now && (l.state != LeaseState::Bound || l.client_id != client_id)
        })
    }

    /// First available address of `pool` for `client_id`, scanning from the
    /// last address handed out; `skip` vetoes addresses (server's own,
    /// reserved for other machines). Looks at [`MAX_SCAN`] addresses at most.
    pub fn find_free(
        &self,
        pool: &Pool,
        client_id: &[u8],
        now: Now,
        skip: &dyn Fn(Ipv4Addr) -> bool,
    ) -> Option<Ipv4Addr> {
        let first = u32::from(pool.first);
        let last = u32::from(pool.last);
        let start = if (first..last).contains(&self.hint) {
            self.hint + 1
        } else {
            first
        };
        let mut expired: Option<(Now, Ipv4Addr)> = None;
        let candidates = (start..=last).chain(first..start).take(MAX_SCAN);
        for n in candidates {
            let ip = Ipv4Addr::from(n);
            if pool.is_network_or_broadcast(ip) || skip(ip) {
                continue;
            }
            if !self.available(ip, client_id, now) {
                continue;
            }
            match self.leases.get(&ip) {
                // Never used (or released): take it.
                None => return Some(ip),
                // Expired leases are kept for their old client as long as
                // fresh addresses remain; reuse the oldest one last.
                Some(l) => {
                    if expired.is_none_or(|(e, _)| l.expires < e) {
                        expired = Some((l.expires, ip));
                    }
                }
            }
        }
        expired.map(|(_, ip)| ip)
    }

    /// Apply one change (also used to replay the lease file).
    pub fn apply(&mut self, change: &LeaseChange) {
        match change {
            LeaseChange::Offer {
                ip,
                client_id,
                until,
            } => {
                self.drop_offer_of(client_id);
                self.offers.insert(
                    *ip,
                    Offer {
                        client_id: client_id.clone(),
                        until: *until,
                    },
                );
                self.offer_by_client.insert(client_id.clone(), *ip);
                self.hint = u32::from(*ip);
            }
            LeaseChange::Bind(lease) => {
                self.drop_offer_of(&lease.client_id);
                // One address per client: a move frees the old one.
                if let Some(old) = self.by_client.get(&lease.client_id).copied()
                    && old != lease.ip
                    && self
                        .leases
                        .get(&old)
                        .is_some_and(|l| l.client_id == lease.client_id)
                {
                    self.leases.remove(&old);
                }
                // Whoever held this address before loses it.
                if let Some(prev) = self.leases.get(&lease.ip)
                    && prev.client_id != lease.client_id
                {
                    let prev_client = prev.client_id.clone();
                    if self.by_client.get(&prev_client) == Some(&lease.ip) {
                        self.by_client.remove(&prev_client);
                    }
                }
                self.by_client.insert(lease.client_id.clone(), lease.ip);
                self.leases.insert(lease.ip, lease.clone());
                self.hint = u32::from(lease.ip);
            }
            LeaseChange::Free { ip } => {
                if let Some(l) = self.leases.remove(ip)
                    && self.by_client.get(&l.client_id) == Some(ip)
                {
                    self.by_client.remove(&l.client_id);
                }
            }
            LeaseChange::Decline { ip, mac, until } => {
                if let Some(l) = self.leases.remove(ip)
                    && self.by_client.get(&l.client_id) == Some(ip)
                {
                    self.by_client.remove(&l.client_id);
                }
                if let Some(o) = self.offers.remove(ip) {
                    self.offer_by_client.remove(&o.client_id);
                }
                self.leases.insert(
                    *ip,
                    Lease {
                        ip: *ip,
                        state: LeaseState::Declined,
                        client_id: Vec::new(),
                        mac: *mac,
                        expires: *until,
                        hostname: None,
                    },
                );
            }
            LeaseChange::Withdraw { client_id } => self.drop_offer_of(client_id),
        }
    }

    fn drop_offer_of(&mut self, client_id: &[u8]) {
        if let Some(ip) = self.offer_by_client.remove(client_id)
            && self
                .offers
                .get(&ip)
                .is_some_and(|o| o.client_id == client_id)
        {
            self.offers.remove(&ip);
        }
    }

    /// Drop expired offers and expired leases (call now and then; the core
    /// treats expired entries as free anyway). Expired bound leases are kept
    /// for `grace` seconds so a returning client gets its old address.
    pub fn purge(&mut self, now: Now, grace: u64) {
        let offers = &mut self.offers;
        offers.retain(|_, o| o.until > now);
        self.offer_by_client.retain(|_, ip| offers.contains_key(ip));
        let by_client = &mut self.by_client;
        self.leases.retain(|ip, l| {
            let keep = l.expires.saturating_add(grace) > now;
            if !keep && by_client.get(&l.client_id) == Some(ip) {
                by_client.remove(&l.client_id);
            }
            keep
        });
    }

    /// All durable entries (for compaction), live or not.
    pub fn durable(&self) -> impl Iterator<Item = &Lease> {
        self.leases.values()
    }

    /// Live leases and quarantined addresses, for `GET /leases`.
    pub fn snapshot(&self, now: Now) -> Vec<LeaseInfo> {
        self.leases
            .values()
            .filter(|l| l.expires > now)
            .map(|l| LeaseInfo {
                ip: l.ip,
                mac: l.mac.to_string(),
                state: l.state,
                expires: (l.expires != NEVER).then_some(l.expires),
                hostname: l.hostname.clone(),
            })
            .collect()
    }

    /// Number of durable entries.
    pub fn len(&self) -> usize {
        self.leases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> Pool {
        "10.0.0.10,10.0.0.12,255.255.255.0,1h".parse().unwrap()
    }

    fn bind(ip: [u8; 4], cid: &[u8], expires: Now) -> LeaseChange {
        LeaseChange::Bind(Lease {
            ip: Ipv4Addr::from(ip),
            state: LeaseState::Bound,
            client_id: cid.to_vec(),
            mac: Mac([0; 6]),
            expires,
            hostname: None,
        })
    }

    #[test]
    fn offers_hold_addresses_for_their_client_only() {
        let mut t = LeaseTable::new();
        let p = pool();
        let a = t.find_free(&p, b"a", 100, &|_| false).unwrap();
        t.apply(&LeaseChange::Offer {
            ip: a,
            client_id: b"a".to_vec(),
            until: 160,
        });
        let b = t.find_free(&p, b"b", 100, &|_| false).unwrap();
        assert_ne!(a, b);
        assert!(t.available(a, b"a", 100));
        assert!(!t.available(a, b"b", 100));
        // The offer lapses.
        assert!(t.available(a, b"b", 160));
        assert_eq!(t.offered_to(b"a", 100), Some(a));
        assert_eq!(t.offered_to(b"a", 160), None);
    }

    #[test]
    fn exhaustion_and_expired_reuse() {
        let mut t = LeaseTable::new();
        let p = pool();
        for (i, c) in [b"a", b"b", b"c"].iter().enumerate() {
            let ip = t.find_free(&p, *c, 100, &|_| false).unwrap();
            t.apply(&bind(ip.octets(), *c, 200 + i as u64));
        }
        assert_eq!(t.find_free(&p, b"d", 150, &|_| false), None);
        // After expiry the oldest expired lease is reused first.
        assert_eq!(
            t.find_free(&p, b"d", 500, &|_| false),
            t.bound_to(b"a").map(|l| l.ip)
        );
    }

    #[test]
    fn skip_and_network_addresses_are_never_offered() {
        let t = LeaseTable::new();
        let p: Pool = "10.0.0.0,10.0.0.2".parse().unwrap();
        let ip = t.find_free(&p, b"a", 0, &|ip| ip == Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(ip, Some(Ipv4Addr::new(10, 0, 0, 2)));
    }

    #[test]
    fn bind_moves_and_release_frees() {
        let mut t = LeaseTable::new();
        t.apply(&bind([10, 0, 0, 10], b"a", 1000));
        t.apply(&bind([10, 0, 0, 11], b"a", 1000));
        assert!(t.get(Ipv4Addr::new(10, 0, 0, 10)).is_none());
        assert_eq!(t.bound_to(b"a").unwrap().ip, Ipv4Addr::new(10, 0, 0, 11));
        t.apply(&LeaseChange::Free {
            ip: Ipv4Addr::new(10, 0, 0, 11),
        });
        assert!(t.bound_to(b"a").is_none());
        assert!(t.is_empty());
    }

    #[test]
    fn decline_quarantines_then_purge_frees() {
        let mut t = LeaseTable::new();
        t.apply(&bind([10, 0, 0, 10], b"a", 1000));
        t.apply(&LeaseChange::Decline {
            ip: Ipv4Addr::new(10, 0, 0, 10),
            mac: Mac([1; 6]),
            until: 700,
        });
        assert!(!t.available(Ipv4Addr::new(10, 0, 0, 10), b"a", 600));
        assert!(t.available(Ipv4Addr::new(10, 0, 0, 10), b"a", 700));
        assert_eq!(t.snapshot(600)[0].state, LeaseState::Declined);
        t.purge(800, 0);
        assert!(t.is_empty());
    }
}
