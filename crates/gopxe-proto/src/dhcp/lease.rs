//! Lease table: pure bookkeeping of bound, offered and declined addresses
//! (RFC 2131 §4.3), and the allocator that picks an address for a
//! DISCOVER. Time is passed in as Unix seconds; nothing here reads a
//! clock or touches a file.
//!
//! The decision core reads the table and returns [`LeaseChange`]s; the driver
//! applies them with [`LeaseTable::apply`] and makes the durable ones
//! ([`LeaseChange::is_durable`]) durable before it sends the reply.
//!
//! # Data structure
//!
//! Hash maps by address (as a `u32`) and by client id: durable leases,
//! client → leased address, offers (client and end of the hold) and
//! client → offered address. [`get`](LeaseTable::get),
//! [`bound_to`](LeaseTable::bound_to), [`offered_to`](LeaseTable::offered_to),
//! [`available`](LeaseTable::available) and
//! [`bound_to_other`](LeaseTable::bound_to_other) are one or two look-ups.
//!
//! Each pool the table is given ([`LeaseTable::set_pools`]) indexes its
//! allocatable addresses (the range less the subnet's network and
//! broadcast addresses). Every such address is in exactly one of three
//! ordered sets, decided by the maps alone:
//!
//! - `fresh`: no lease and no offer (never used, released, or purged),
//!   kept as runs of consecutive addresses (first → last in a `BTreeMap`).
//!   A new pool is one run, so a 16-million-address /8 costs one map entry
//!   up front, and handing addresses out in order keeps it one run.
//! - `held`: an offer but no lease, ordered by `(end of the offer,
//!   address)`: the front is the offer that lapsed longest ago.
//! - `used`: a lease (bound, expired, or a declined address in
//!   quarantine), ordered by `(free from, address)`, where *free from* is
//!   the lease's expiry, or the end of an offer on the address when that
//!   is later: the front is the address that has been free the longest.
//!
//! [`apply`](LeaseTable::apply) moves each address it touches from one set
//! to another: O(log n), n being the number of addresses in use.
//!
//! # Allocation
//!
//! The core first tries what is already the client's (its reservation, its
//! lease even if expired, its offer, the address it asks for), then
//! [`find_free`](LeaseTable::find_free), which takes, in this order:
//!
//! 1. the first fresh address after the last one offered or bound (next
//!    fit, wrapping around to the start of the pool);
//! 2. an address whose offer lapsed (never bound, so as good as fresh);
//! 3. the lease that expired longest ago. Expired leases are kept for their
//!    old client as long as anything fresher is left; a declined address
//!    comes back here when its quarantine ends.
//!
//! Each step is one ordered look-up, O(log n) whatever the pool's size and
//! fill. The caller's veto (the server's own address, addresses reserved
//! for other machines) is asked per candidate, and a vetoed address stays
//! in its set: every search that reaches it steps over it again, one more
//! look-up each, and a step gives up after [`MAX_VETOES`] of them.
//! Reservations outside the pools cost nothing.
//! [`purge`](LeaseTable::purge), called by the driver once a minute, walks
//! the maps: O(n).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use serde::Serialize;

use super::config::Pool;
use super::packet::Mac;

/// Seconds since the Unix epoch.
pub type Now = u64;

/// Most vetoed addresses (the server's own, reserved for other machines)
/// one step of a free-address search steps over before it moves on.
pub const MAX_VETOES: usize = 1024;

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

/// Disjoint, non-adjacent runs of consecutive addresses: first → last.
#[derive(Debug, Clone, Default)]
struct Runs(BTreeMap<u32, u32>);

impl Runs {
    fn run_at(&self, n: u32) -> Option<(u32, u32)> {
        self.0
            .range(..=n)
            .next_back()
            .map(|(&a, &b)| (a, b))
            .filter(|&(_, b)| n <= b)
    }

    /// The smallest member at or after `n`.
    fn first_from(&self, n: u32) -> Option<u32> {
        if self.run_at(n).is_some() {
            return Some(n);
        }
        self.0.range(n..).next().map(|(&a, _)| a)
    }

    fn insert(&mut self, n: u32) {
        if self.run_at(n).is_some() {
            return;
        }
        let start = match n.checked_sub(1).and_then(|p| self.run_at(p)) {
            Some((a, _)) => a,
            None => n,
        };
        let end = match n.checked_add(1).and_then(|s| self.0.remove(&s)) {
            Some(b) => b,
            None => n,
        };
        self.0.insert(start, end);
    }

    fn remove(&mut self, n: u32) {
        let Some((a, b)) = self.run_at(n) else { return };
        self.0.remove(&a);
        if a < n {
            self.0.insert(a, n - 1);
        }
        if n < b {
            self.0.insert(n + 1, b);
        }
    }
}

/// Where an address of a pool is, decided by the table's maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// No lease, no offer.
    Fresh,
    /// An offer (until), no lease.
    Held(Now),
    /// A lease; free for anyone from this time on.
    Used(Now),
}

/// One pool's allocatable addresses, each in exactly one set.
#[derive(Debug, Clone)]
struct PoolIndex {
    /// The pool's range as configured (to find the index of a [`Pool`]).
    first: u32,
    last: u32,
    /// Allocatable: the range less the subnet's network and broadcast
    /// addresses (`lo > hi` when nothing is left).
    lo: u32,
    hi: u32,
    fresh: Runs,
    held: BTreeSet<(Now, u32)>,
    used: BTreeSet<(Now, u32)>,
}

impl PoolIndex {
    fn new(pool: &Pool) -> PoolIndex {
        let first = u32::from(pool.first);
        let last = u32::from(pool.last);
        let mut lo = first;
        let mut hi = last;
        if pool.is_network_or_broadcast(pool.first) {
            lo = lo.saturating_add(1);
        }
        if pool.is_network_or_broadcast(pool.last) {
            hi = hi.saturating_sub(1);
        }
        let mut fresh = Runs::default();
        if lo <= hi {
            fresh.0.insert(lo, hi);
        }
        PoolIndex {
            first,
            last,
            lo,
            hi,
            fresh,
            held: BTreeSet::new(),
            used: BTreeSet::new(),
        }
    }

    fn allocates(&self, n: u32) -> bool {
        self.lo <= n && n <= self.hi
    }

    fn take(&mut self, n: u32, slot: Slot) {
        match slot {
            Slot::Fresh => self.fresh.remove(n),
            Slot::Held(t) => {
                self.held.remove(&(t, n));
            }
            Slot::Used(t) => {
                self.used.remove(&(t, n));
            }
        }
    }

    fn put(&mut self, n: u32, slot: Slot) {
        match slot {
            Slot::Fresh => self.fresh.insert(n),
            Slot::Held(t) => {
                self.held.insert((t, n));
            }
            Slot::Used(t) => {
                self.used.insert((t, n));
            }
        }
    }

    /// Entries in the three sets (the index's memory, in map entries).
    #[cfg(test)]
    fn entries(&self) -> usize {
        self.fresh.0.len() + self.held.len() + self.used.len()
    }
}

/// The table.
#[derive(Debug, Default, Clone)]
pub struct LeaseTable {
    leases: HashMap<u32, Lease>,
    by_client: HashMap<Vec<u8>, u32>,
    /// One offer per address and one per client: `offer_by_client` is the
    /// inverse of `offers`.
    offers: HashMap<u32, Offer>,
    offer_by_client: HashMap<Vec<u8>, u32>,
    /// Indexes of the pools, ordered by first address, not overlapping.
    pools: Vec<PoolIndex>,
    /// The last address offered or bound: where the next search starts.
    hint: u32,
    /// Map look-ups made so far, each O(1) or O(log n) (tests bound the
    /// work per request with it).
    #[cfg(test)]
    steps: std::cell::Cell<u64>,
}

impl LeaseTable {
    /// A table that indexes no pool: [`set_pools`](Self::set_pools) before
    /// asking it for free addresses.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty table indexing `pools`.
    pub fn for_pools(pools: &[Pool]) -> Self {
        let mut t = Self::new();
        t.set_pools(pools);
        t
    }

    /// Index `pools` (the configured ones) for allocation, replacing any
    /// earlier pools; O(n log n) in the entries already in the table. A
    /// pool overlapping an earlier one in the list is left out (the
    /// configuration check refuses such pools).
    pub fn set_pools(&mut self, pools: &[Pool]) {
        let mut index: Vec<PoolIndex> = Vec::with_capacity(pools.len());
        for p in pools {
            let (a, b) = (u32::from(p.first), u32::from(p.last));
            if index.iter().all(|i| b < i.first || i.last < a) {
                index.push(PoolIndex::new(p));
            }
        }
        index.sort_unstable_by_key(|i| i.first);
        self.pools = index;
        let taken: Vec<u32> = self
            .leases
            .keys()
            .chain(self.offers.keys())
            .copied()
            .collect();
        for n in taken {
            // Fresh → wherever the maps say (a no-op the second time).
            if let Some(i) = self.pool_at(n) {
                let slot = self.slot(n);
                if let Some(p) = self.pools.get_mut(i) {
                    p.take(n, Slot::Fresh);
                    p.put(n, slot);
                }
            }
        }
    }

    /// Does the table index this pool (so that `find_free` can use it)?
    pub fn indexes(&self, pool: &Pool) -> bool {
        self.index_of(pool).is_some()
    }

    #[inline]
    fn step(&self) {
        #[cfg(test)]
        self.steps.set(self.steps.get() + 1);
    }

    /// Map look-ups made so far.
    #[cfg(test)]
    pub(crate) fn steps(&self) -> u64 {
        self.steps.get()
    }

    /// Entries in the pools' indexes (their memory, in map entries).
    #[cfg(test)]
    pub(crate) fn index_entries(&self) -> usize {
        self.pools.iter().map(PoolIndex::entries).sum()
    }

    /// The durable lease at `ip`, live or expired.
    pub fn get(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.step();
        self.leases.get(&u32::from(ip))
    }

    /// The client's bound lease (live or expired), if any.
    pub fn bound_to(&self, client_id: &[u8]) -> Option<&Lease> {
        self.step();
        let ip = self.by_client.get(client_id)?;
        self.step();
        self.leases
            .get(ip)
            .filter(|l| l.state == LeaseState::Bound && l.client_id == client_id)
    }

    /// The address currently offered to the client, if the offer still holds.
    pub fn offered_to(&self, client_id: &[u8], now: Now) -> Option<Ipv4Addr> {
        self.step();
        let ip = *self.offer_by_client.get(client_id)?;
        self.step();
        self.offers
            .get(&ip)
            .filter(|o| o.client_id == client_id && o.until > now)
            .map(|_| Ipv4Addr::from(ip))
    }

    /// May `ip` be given to `client_id` now? Free, expired, or already theirs;
    /// not quarantined and not held for another client.
    pub fn available(&self, ip: Ipv4Addr, client_id: &[u8], now: Now) -> bool {
        self.step();
        self.step();
        let n = u32::from(ip);
        let lease_ok = match self.leases.get(&n) {
            None => true,
            Some(l) if l.expires <= now => true,
            Some(l) => l.state == LeaseState::Bound && l.client_id == client_id,
        };
        let offer_ok = match self.offers.get(&n) {
            None => true,
            Some(o) => o.until <= now || o.client_id == client_id,
        };
        lease_ok && offer_ok
    }

    /// Is `ip` actively bound to a different client?
    pub fn bound_to_other(&self, ip: Ipv4Addr, client_id: &[u8], now: Now) -> bool {
        self.step();
        self.leases.get(&u32::from(ip)).is_some_and(|l| {
            l.expires > now && (l.state != LeaseState::Bound || l.client_id != client_id)
        })
    }

    /// A free address of `pool` for `client_id`: a fresh one from the last
    /// address handed out on, else one whose offer lapsed, else the lease
    /// that expired longest ago (see the module doc). `skip` vetoes
    /// addresses (the server's own, reserved for other machines). `None`
    /// when nothing is free, or when the table does not index `pool`.
    pub fn find_free(
        &self,
        pool: &Pool,
        client_id: &[u8],
        now: Now,
        skip: &dyn Fn(Ipv4Addr) -> bool,
    ) -> Option<Ipv4Addr> {
        self.step();
        let index = self.pools.get(self.index_of(pool)?)?;
        let ok = |n: u32| {
            let ip = Ipv4Addr::from(n);
            !pool.is_network_or_broadcast(ip) && !skip(ip) && self.available(ip, client_id, now)
        };
        // 1. Fresh, next fit from the hint, wrapping around once.
        let first = u32::from(pool.first);
        let last = u32::from(pool.last);
        let start = if (first..last).contains(&self.hint) {
            self.hint + 1
        } else {
            first
        };
        let mut from = Some(start);
        let mut wrapped = false;
        for _ in 0..MAX_VETOES {
            self.step();
            let n = match from.and_then(|f| index.fresh.first_from(f)) {
                Some(n) if !wrapped || n < start => n,
                _ if !wrapped => {
                    wrapped = true;
                    match index.fresh.first_from(first) {
                        Some(n) if n < start => n,
                        _ => break,
                    }
                }
                _ => break,
            };
            if ok(n) {
                return Some(Ipv4Addr::from(n));
            }
            from = n.checked_add(1);
        }
        // 2. Offers that lapsed, oldest first; 3. leases that expired,
        // longest free first.
        for set in [&index.held, &index.used] {
            self.step();
            let lapsed = set.iter().take_while(|(t, _)| *t <= now).take(MAX_VETOES);
            for &(_, n) in lapsed {
                if ok(n) {
                    return Some(Ipv4Addr::from(n));
                }
            }
        }
        None
    }

    /// Apply one change (also used to replay the lease file).
    pub fn apply(&mut self, change: &LeaseChange) {
        match change {
            LeaseChange::Offer {
                ip,
                client_id,
                until,
            } => {
                let n = u32::from(*ip);
                if let Some(&old) = self.offer_by_client.get(client_id.as_slice())
                    && old != n
                {
                    self.edit(old, |t| t.drop_offer_at(old));
                }
                self.edit(n, |t| {
                    if t.offers.get(&n).is_some_and(|o| o.client_id != *client_id) {
                        t.drop_offer_at(n);
                    }
                    match t.offers.get_mut(&n) {
                        Some(o) => o.until = *until,
                        None => {
                            t.offers.insert(
                                n,
                                Offer {
                                    client_id: client_id.clone(),
                                    until: *until,
                                },
                            );
                            t.offer_by_client.insert(client_id.clone(), n);
                        }
                    }
                });
                self.hint = n;
            }
            LeaseChange::Bind(lease) => {
                let n = u32::from(lease.ip);
                let cid = lease.client_id.as_slice();
                if let Some(&o) = self.offer_by_client.get(cid)
                    && o != n
                {
                    self.edit(o, |t| t.drop_offer_at(o));
                }
                // One address per client: a move frees the old one.
                if let Some(&old) = self.by_client.get(cid)
                    && old != n
                    && self.leases.get(&old).is_some_and(|l| l.client_id == cid)
                {
                    self.edit(old, |t| {
                        t.leases.remove(&old);
                    });
                }
                self.edit(n, |t| {
                    if t.offers.get(&n).is_some_and(|o| o.client_id == cid) {
                        t.drop_offer_at(n);
                    }
                    // Whoever held this address before loses it.
                    if let Some(prev) = t.leases.get(&n)
                        && prev.client_id != cid
                        && t.by_client.get(prev.client_id.as_slice()) == Some(&n)
                    {
                        t.by_client.remove(prev.client_id.as_slice());
                    }
                    match t.by_client.get_mut(cid) {
                        Some(at) => *at = n,
                        None => {
                            t.by_client.insert(cid.to_vec(), n);
                        }
                    }
                    t.leases.insert(n, lease.clone());
                });
                self.hint = n;
            }
            LeaseChange::Free { ip } => {
                let n = u32::from(*ip);
                self.edit(n, |t| t.drop_lease_at(n));
            }
            LeaseChange::Decline { ip, mac, until } => {
                let n = u32::from(*ip);
                self.edit(n, |t| {
                    t.drop_lease_at(n);
                    t.drop_offer_at(n);
                    t.leases.insert(
                        n,
                        Lease {
                            ip: *ip,
                            state: LeaseState::Declined,
                            client_id: Vec::new(),
                            mac: *mac,
                            expires: *until,
                            hostname: None,
                        },
                    );
                });
            }
            LeaseChange::Withdraw { client_id } => {
                if let Some(&o) = self.offer_by_client.get(client_id.as_slice()) {
                    self.edit(o, |t| t.drop_offer_at(o));
                }
            }
        }
    }

    /// The index of the pool `n` is allocatable in, if any.
    fn pool_at(&self, n: u32) -> Option<usize> {
        let i = self
            .pools
            .partition_point(|p| p.first <= n)
            .checked_sub(1)?;
        self.pools
            .get(i)
            .is_some_and(|p| p.allocates(n))
            .then_some(i)
    }

    /// The index of this configured pool, if the table has one.
    fn index_of(&self, pool: &Pool) -> Option<usize> {
        let (a, b) = (u32::from(pool.first), u32::from(pool.last));
        let i = self.pools.partition_point(|p| p.first < a);
        self.pools
            .get(i)
            .is_some_and(|p| p.first == a && p.last == b)
            .then_some(i)
    }

    /// Where address `n` belongs, from the maps.
    fn slot(&self, n: u32) -> Slot {
        let until = self.offers.get(&n).map(|o| o.until);
        match (self.leases.get(&n), until) {
            (Some(l), until) => Slot::Used(l.expires.max(until.unwrap_or(0))),
            (None, Some(until)) => Slot::Held(until),
            (None, None) => Slot::Fresh,
        }
    }

    /// Change the maps' entries for address `n` only, keeping its pool's
    /// index in step.
    fn edit(&mut self, n: u32, f: impl FnOnce(&mut Self)) {
        let Some(i) = self.pool_at(n) else {
            return f(self);
        };
        let before = self.slot(n);
        f(self);
        let after = self.slot(n);
        if before != after
            && let Some(p) = self.pools.get_mut(i)
        {
            p.take(n, before);
            p.put(n, after);
        }
    }

    /// Remove the offer on `n` (maps only; call inside [`Self::edit`]).
    fn drop_offer_at(&mut self, n: u32) {
        if let Some(o) = self.offers.remove(&n)
            && self.offer_by_client.get(&o.client_id) == Some(&n)
        {
            self.offer_by_client.remove(&o.client_id);
        }
    }

    /// Remove the lease on `n` (maps only; call inside [`Self::edit`]).
    fn drop_lease_at(&mut self, n: u32) {
        if let Some(l) = self.leases.remove(&n)
            && self.by_client.get(&l.client_id) == Some(&n)
        {
            self.by_client.remove(&l.client_id);
        }
    }

    /// Drop expired offers and expired leases (call now and then; the core
    /// treats expired entries as free anyway). Expired bound leases are kept
    /// for `grace` seconds so a returning client gets its old address.
    pub fn purge(&mut self, now: Now, grace: u64) {
        let offers: Vec<u32> = self
            .offers
            .iter()
            .filter(|(_, o)| o.until <= now)
            .map(|(n, _)| *n)
            .collect();
        for n in offers {
            self.edit(n, |t| t.drop_offer_at(n));
        }
        let leases: Vec<u32> = self
            .leases
            .iter()
            .filter(|(_, l)| l.expires.saturating_add(grace) <= now)
            .map(|(n, _)| *n)
            .collect();
        for n in leases {
            self.edit(n, |t| t.drop_lease_at(n));
        }
    }

    /// All durable entries (for compaction), live or not, in address order.
    pub fn durable(&self) -> impl Iterator<Item = &Lease> {
        let mut all: Vec<&Lease> = self.leases.values().collect();
        all.sort_unstable_by_key(|l| l.ip);
        all.into_iter()
    }

    /// Live leases and quarantined addresses, for `GET /leases`, in
    /// address order.
    pub fn snapshot(&self, now: Now) -> Vec<LeaseInfo> {
        let mut live: Vec<LeaseInfo> = self
            .leases
            .values()
            .filter(|l| l.expires > now)
            .map(|l| LeaseInfo {
                ip: l.ip,
                mac: l.mac.to_string(),
                state: l.state,
                expires: (l.expires != NEVER).then_some(l.expires),
                hostname: l.hostname.clone(),
            })
            .collect();
        live.sort_unstable_by_key(|l| l.ip);
        live
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

    fn table() -> LeaseTable {
        LeaseTable::for_pools(&[pool()])
    }

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, last)
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

    fn offer(ip: Ipv4Addr, cid: &[u8], until: Now) -> LeaseChange {
        LeaseChange::Offer {
            ip,
            client_id: cid.to_vec(),
            until,
        }
    }

    fn free(t: &LeaseTable, cid: &[u8], now: Now) -> Option<Ipv4Addr> {
        t.find_free(&pool(), cid, now, &|_| false)
    }

    #[test]
    fn runs_merge_and_split() {
        let mut r = Runs::default();
        for n in [5, 7, 6, 1, 2, u32::MAX, 0] {
            r.insert(n);
        }
        let runs: Vec<(u32, u32)> = r.0.iter().map(|(&a, &b)| (a, b)).collect();
        assert_eq!(runs, [(0, 2), (5, 7), (u32::MAX, u32::MAX)]);
        assert_eq!(r.first_from(3), Some(5));
        assert_eq!(r.first_from(6), Some(6));
        assert_eq!(r.first_from(8), Some(u32::MAX));
        r.remove(6);
        r.remove(0);
        r.remove(u32::MAX);
        r.remove(40);
        let runs: Vec<(u32, u32)> = r.0.iter().map(|(&a, &b)| (a, b)).collect();
        assert_eq!(runs, [(1, 2), (5, 5), (7, 7)]);
        assert_eq!(r.first_from(8), None);
    }

    #[test]
    fn offers_hold_addresses_for_their_client_only() {
        let mut t = table();
        let a = free(&t, b"a", 100).unwrap();
        t.apply(&offer(a, b"a", 160));
        let b = free(&t, b"b", 100).unwrap();
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
        let mut t = table();
        for (i, c) in [b"a", b"b", b"c"].iter().enumerate() {
            let ip = free(&t, *c, 100).unwrap();
            t.apply(&bind(ip.octets(), *c, 200 + i as u64));
        }
        assert_eq!(free(&t, b"d", 150), None);
        // After expiry the oldest expired lease is reused first.
        assert_eq!(free(&t, b"d", 500), t.bound_to(b"a").map(|l| l.ip));
    }

    #[test]
    fn skip_and_network_addresses_are_never_offered() {
        let p: Pool = "10.0.0.0,10.0.0.2".parse().unwrap();
        let t = LeaseTable::for_pools(std::slice::from_ref(&p));
        let ip = t.find_free(&p, b"a", 0, &|ip| ip == Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(ip, Some(Ipv4Addr::new(10, 0, 0, 2)));
        // A pool that is only the network address has nothing to give.
        let p: Pool = "10.0.0.0,10.0.0.0".parse().unwrap();
        let t = LeaseTable::for_pools(std::slice::from_ref(&p));
        assert_eq!(t.find_free(&p, b"a", 0, &|_| false), None);
        assert_eq!(t.index_entries(), 0);
    }

    #[test]
    fn a_pool_the_table_does_not_index_has_nothing_to_give() {
        let t = LeaseTable::new();
        assert!(!t.indexes(&pool()));
        assert_eq!(free(&t, b"a", 0), None);
        assert!(table().indexes(&pool()));
    }

    #[test]
    fn bind_moves_and_release_frees() {
        let mut t = table();
        t.apply(&bind([10, 0, 0, 10], b"a", 1000));
        t.apply(&bind([10, 0, 0, 11], b"a", 1000));
        assert!(t.get(ip(10)).is_none());
        assert_eq!(t.bound_to(b"a").unwrap().ip, ip(11));
        t.apply(&LeaseChange::Free { ip: ip(11) });
        assert!(t.bound_to(b"a").is_none());
        assert!(t.is_empty());
        // Both addresses are fresh again (and the index says so).
        assert_eq!(t.index_entries(), 1);
    }

    #[test]
    fn decline_quarantines_then_purge_frees() {
        let mut t = table();
        t.apply(&bind([10, 0, 0, 10], b"a", 1000));
        t.apply(&LeaseChange::Decline {
            ip: ip(10),
            mac: Mac([1; 6]),
            until: 700,
        });
        assert!(!t.available(ip(10), b"a", 600));
        assert!(t.available(ip(10), b"a", 700));
        assert_eq!(t.snapshot(600)[0].state, LeaseState::Declined);
        t.purge(800, 0);
        assert!(t.is_empty());
        assert_eq!(t.index_entries(), 1);
    }

    #[test]
    fn a_declined_address_comes_back_when_its_quarantine_ends() {
        let mut t = table();
        let q = free(&t, b"a", 100).unwrap();
        t.apply(&offer(q, b"a", 160));
        t.apply(&LeaseChange::Decline {
            ip: q,
            mac: Mac([1; 6]),
            until: 700,
        });
        assert_eq!(t.offered_to(b"a", 100), None);
        for c in [b"b", b"c"] {
            let ip = free(&t, c, 100).unwrap();
            assert_ne!(ip, q);
            t.apply(&bind(ip.octets(), c, 10_000));
        }
        assert_eq!(free(&t, b"d", 699), None);
        assert_eq!(free(&t, b"d", 700), Some(q));
    }

    #[test]
    fn never_used_addresses_go_before_expired_ones() {
        let p: Pool = "10.0.0.10,10.0.0.20,255.255.255.0,1h".parse().unwrap();
        let mut t = LeaseTable::for_pools(std::slice::from_ref(&p));
        let get = |t: &LeaseTable, c: &[u8], now| t.find_free(&p, c, now, &|_| false);
        t.apply(&bind([10, 0, 0, 10], b"a", 200));
        // Expired, but a's: the ten fresh addresses go first, in order.
        for (i, c) in (b'b'..=b'k').enumerate() {
            let got = get(&t, &[c], 300).unwrap();
            assert_eq!(got, ip(11 + i as u8));
            t.apply(&bind(got.octets(), &[c], 10_000));
        }
        assert_eq!(t.bound_to(b"a").unwrap().ip, ip(10));
        assert!(t.available(ip(10), b"a", 300));
        // A released address is as good as a fresh one.
        t.apply(&LeaseChange::Free { ip: ip(15) });
        assert_eq!(get(&t, b"x", 300), Some(ip(15)));
        t.apply(&bind([10, 0, 0, 15], b"x", 10_000));
        // Then the expired lease goes to a newcomer.
        assert_eq!(get(&t, b"y", 300), Some(ip(10)));
    }

    #[test]
    fn lapsed_offers_come_back_oldest_first() {
        let mut t = table();
        for (c, until) in [(b"a", 170), (b"b", 150), (b"c", 160)] {
            let ip = free(&t, c, 100).unwrap();
            t.apply(&offer(ip, c, until));
        }
        assert_eq!(free(&t, b"d", 149), None);
        assert_eq!(free(&t, b"d", 165), t.offered_to(b"b", 0));
        // A second offer to the same client moves it (one offer per client).
        let b = t.offered_to(b"b", 0).unwrap();
        t.apply(&offer(b, b"d", 200));
        assert_eq!(t.offered_to(b"b", 0), None);
        assert_eq!(t.offered_to(b"d", 0), Some(b));
        assert_eq!(free(&t, b"e", 165), t.offered_to(b"c", 0));
        t.apply(&LeaseChange::Withdraw {
            client_id: b"d".to_vec(),
        });
        assert_eq!(free(&t, b"e", 100), Some(b));
    }

    #[test]
    fn an_offer_outlasting_an_expired_lease_holds_it() {
        let mut t = table();
        // a's lease expires at 200; a re-discovers at 190 and is offered it
        // until 250: nobody else gets it before then.
        t.apply(&bind([10, 0, 0, 10], b"a", 200));
        t.apply(&bind([10, 0, 0, 11], b"b", 10_000));
        t.apply(&bind([10, 0, 0, 12], b"c", 10_000));
        t.apply(&offer(ip(10), b"a", 250));
        assert_eq!(free(&t, b"d", 220), None);
        assert_eq!(free(&t, b"d", 250), Some(ip(10)));
    }

    #[test]
    fn vetoed_addresses_are_stepped_over_in_every_phase() {
        let mut t = table();
        let not_10 = |ip: Ipv4Addr| ip == Ipv4Addr::new(10, 0, 0, 10);
        assert_eq!(t.find_free(&pool(), b"a", 0, &not_10), Some(ip(11)));
        // Lapsed offers.
        for n in [10, 11, 12] {
            t.apply(&offer(ip(n), &[n], 100));
        }
        assert_eq!(t.find_free(&pool(), b"a", 100, &not_10), Some(ip(11)));
        // Expired leases (10's is the oldest).
        for n in [10, 11, 12] {
            t.apply(&bind([10, 0, 0, n], &[n], 100 + u64::from(n)));
        }
        assert_eq!(t.find_free(&pool(), b"a", 200, &not_10), Some(ip(11)));
        assert_eq!(t.find_free(&pool(), b"a", 200, &|_| true), None);
    }

    #[test]
    fn overlapping_pools_are_left_out() {
        let a: Pool = "10.0.0.10,10.0.0.20".parse().unwrap();
        let b: Pool = "10.0.0.15,10.0.0.30".parse().unwrap();
        let c: Pool = "10.0.1.10,10.0.1.20".parse().unwrap();
        let t = LeaseTable::for_pools(&[c.clone(), a.clone(), b.clone()]);
        assert!(t.indexes(&a) && t.indexes(&c) && !t.indexes(&b));
        assert_eq!(
            t.find_free(&c, b"x", 0, &|_| false),
            Some(Ipv4Addr::new(10, 0, 1, 10))
        );
    }

    #[test]
    fn set_pools_indexes_what_is_already_there() {
        // As after replaying a lease file: entries first, pools later.
        let mut t = LeaseTable::new();
        t.apply(&bind([10, 0, 0, 10], b"a", 1000));
        t.apply(&offer(ip(11), b"b", 500));
        t.apply(&bind([10, 0, 0, 99], b"z", 1000));
        t.set_pools(&[pool()]);
        assert_eq!(t.index_entries(), 3);
        assert_eq!(free(&t, b"c", 100), Some(ip(12)));
        t.apply(&bind([10, 0, 0, 12], b"c", 2000));
        assert_eq!(free(&t, b"d", 100), None);
        assert_eq!(free(&t, b"d", 500), Some(ip(11)));
        assert_eq!(free(&t, b"d", 1000), Some(ip(11)));
        t.apply(&bind([10, 0, 0, 11], b"d", 2000));
        assert_eq!(free(&t, b"e", 1000), Some(ip(10)));
        // Setting the same pools again changes nothing.
        t.set_pools(&[pool()]);
        assert_eq!(t.index_entries(), 3);
        assert_eq!(t.pools[0].fresh.0.len(), 0);
    }

    #[test]
    fn a_slash8_pool_costs_nothing_up_front() {
        let p: Pool = "10.0.0.0,10.255.255.255,255.0.0.0,1h".parse().unwrap();
        let mut t = LeaseTable::for_pools(std::slice::from_ref(&p));
        assert_eq!(p.size(), 1 << 24);
        // One run of 16,777,214 addresses, nothing else.
        assert_eq!(t.index_entries(), 1);
        assert_eq!(t.leases.capacity() + t.offers.capacity(), 0);
        // Handing addresses out in order keeps the run one run.
        for i in 0..1000u32 {
            let cid = i.to_be_bytes();
            let ip = t.find_free(&p, &cid, 0, &|_| false).unwrap();
            assert_eq!(ip, Ipv4Addr::from(u32::from(p.first) + 1 + i));
            t.apply(&offer(ip, &cid, 60));
            t.apply(&bind(ip.octets(), &cid, 3600));
        }
        assert_eq!(t.pools[0].fresh.0.len(), 1);
        assert_eq!(t.index_entries(), 1 + 1000);
    }

    /// Tiny deterministic generator for the churn tests.
    fn xorshift(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    /// Checks every address of the pool is in exactly the set the maps say.
    fn check_index(t: &LeaseTable) {
        for p in &t.pools {
            let mut counted = p.held.len() + p.used.len();
            counted += p
                .fresh
                .0
                .iter()
                .map(|(a, b)| (b - a + 1) as usize)
                .sum::<usize>();
            assert_eq!(counted as u64, u64::from(p.hi - p.lo) + 1);
            for &(k, n) in &p.held {
                assert_eq!(t.slot(n), Slot::Held(k));
            }
            for &(k, n) in &p.used {
                assert_eq!(t.slot(n), Slot::Used(k));
            }
        }
        assert_eq!(t.offers.len(), t.offer_by_client.len());
        for (n, o) in &t.offers {
            assert_eq!(t.offer_by_client.get(&o.client_id), Some(n));
        }
    }

    /// A /16 filled past full by 100,000 clients binding (for 1 to 24 hours),
    /// releasing, declining and coming back, time moving on: every search
    /// takes a few look-ups, whether it finds a fresh address, a lapsed
    /// offer, an expired lease, or nothing.
    #[test]
    fn a_full_slash16_with_churn_answers_in_a_few_steps() {
        let p: Pool = "10.1.0.0,10.1.255.255,255.255.0.0,1h".parse().unwrap();
        // Eight addresses reserved for other machines, stepped over.
        let reserved = |ip: Ipv4Addr| u32::from(ip) % 8192 == 7;
        let mut t = LeaseTable::for_pools(std::slice::from_ref(&p));
        let mut seed = 0x2545_f491_4f6c_dd1d;
        let mut now: Now = 1_000;
        let (mut worst, mut returning, mut reused, mut none) = (0, 0, 0, 0);
        for round in 0..200_000u32 {
            now += u64::from(xorshift(&mut seed).is_multiple_of(16));
            let cid = ((xorshift(&mut seed) % 100_000) as u32).to_be_bytes();
            let before = t.steps();
            let own = t
                .bound_to(&cid)
                .map(|l| l.ip)
                .filter(|&ip| t.available(ip, &cid, now));
            let got = own.or_else(|| t.find_free(&p, &cid, now, &reserved));
            let steps = t.steps() - before;
            worst = worst.max(steps);
            assert!(steps <= 24, "round {round}: {steps} steps");
            assert!(got.is_none_or(|ip| !reserved(ip)));
            let Some(ip) = got else {
                none += 1;
                continue;
            };
            if own.is_some() {
                returning += 1;
            } else if t.get(ip).is_some() {
                reused += 1;
            }
            match xorshift(&mut seed) % 10 {
                0 => t.apply(&offer(ip, &cid, now + 60)),
                1 if own.is_some() => t.apply(&LeaseChange::Free { ip }),
                2 => t.apply(&LeaseChange::Decline {
                    ip,
                    mac: Mac([0; 6]),
                    until: now + 600,
                }),
                _ => {
                    let hours = 1 + xorshift(&mut seed) % 24;
                    t.apply(&offer(ip, &cid, now + 60));
                    t.apply(&bind(ip.octets(), &cid, now + 3600 * hours));
                }
            }
            if round % 50_000 == 0 {
                check_index(&t);
            }
        }
        check_index(&t);
        // Every path was taken, and the searches did some work.
        assert!(returning > 1000 && reused > 1000 && none > 1000);
        assert!(worst > 6, "{worst} steps at most");
        t.purge(now + 100_000, 0);
        assert!(t.is_empty());
        check_index(&t);
        assert_eq!(t.index_entries(), 1);
    }
}
