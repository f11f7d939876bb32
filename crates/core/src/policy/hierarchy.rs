//! The `[scopes]` hierarchy (policy version 2): a broad scope implies narrower ones, transitively.
//! Owns building the closure at load (a cycle is a load error) and expanding a token's scopes
//! with it, once per token; not the scope checks themselves (`decide.rs`).

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::ScopeSet;

/// Each policy load gets its own number, so a token's expansion under an older policy is never
/// taken for the current one's.
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// Each scope that implies others, with all it implies (itself excluded), sorted.
#[derive(Debug, Default)]
pub(super) struct Hierarchy {
    implied: HashMap<Box<str>, Box<[Box<str>]>>,
    generation: u64,
}

/// A token's scopes after the hierarchy, kept with the verified token.
#[derive(Debug, Default)]
pub struct GrantedCache(Mutex<Option<(u64, Arc<ScopeSet>)>>);

/// A clone starts empty: the cache is derived from the scopes, and is rebuilt on first use.
impl Clone for GrantedCache {
    fn clone(&self) -> Self {
        GrantedCache::default()
    }
}

/// Derived from the scopes, so it never tells two principals apart.
impl PartialEq for GrantedCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// A token's scopes as the policy sees them.
#[derive(Debug, Clone)]
pub enum Granted<'a> {
    /// No hierarchy: the token's own.
    AsIssued(&'a ScopeSet),
    /// With the scopes the hierarchy implies.
    Expanded(Arc<ScopeSet>),
}

impl Deref for Granted<'_> {
    type Target = ScopeSet;

    fn deref(&self) -> &ScopeSet {
        match self {
            Granted::AsIssued(scopes) => scopes,
            Granted::Expanded(scopes) => scopes,
        }
    }
}

impl Hierarchy {
    /// Builds the transitive closure of `edges` (scope, the scopes it names, and where the scope
    /// was written). A cycle is reported once, at the first scope found on it.
    pub(super) fn build(
        edges: &[(&str, Vec<&str>, usize)],
        report: &mut impl FnMut(usize, String),
    ) -> Hierarchy {
        let direct: HashMap<&str, &[&str]> = edges
            .iter()
            .map(|(scope, narrower, _)| (*scope, narrower.as_slice()))
            .collect();
        let mut implied = HashMap::new();
        let mut reported_cycle = false;
        for (scope, _, at) in edges {
            let mut seen: Vec<&str> = Vec::new();
            let mut path = vec![*scope];
            if let Err(cycle) = close(scope, &direct, &mut seen, &mut path) {
                if !reported_cycle {
                    report(
                        *at,
                        format!(
                            "the scope hierarchy has a cycle: {}; a scope cannot imply itself",
                            cycle.join(" -> ")
                        ),
                    );
                    reported_cycle = true;
                }
                continue;
            }
            seen.sort_unstable();
            seen.dedup();
            implied.insert(
                Box::<str>::from(*scope),
                seen.into_iter().map(Box::from).collect(),
            );
        }
        Hierarchy {
            implied,
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Every scope named in the hierarchy, broad and narrow.
    pub(super) fn scopes(&self) -> impl Iterator<Item = &str> {
        self.implied.iter().flat_map(|(broad, narrow)| {
            std::iter::once(&**broad).chain(narrow.iter().map(|s| &**s))
        })
    }

    /// How many scopes `scope` implies: 0 for the narrowest.
    pub(super) fn implied_count(&self, scope: &str) -> usize {
        self.implied.get(scope).map_or(0, |narrow| narrow.len())
    }

    /// The scopes `scope` implies, itself excluded.
    pub(super) fn implied(&self, scope: &str) -> &[Box<str>] {
        self.implied.get(scope).map_or(&[], |narrow| narrow)
    }

    pub(super) fn expand<'a>(&self, scopes: &'a ScopeSet, cache: &GrantedCache) -> Granted<'a> {
        if self.implied.is_empty() || !scopes.iter().any(|s| self.implied.contains_key(s)) {
            return Granted::AsIssued(scopes);
        }
        let mut cached = cache
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((generation, expanded)) = &*cached
            && *generation == self.generation
        {
            return Granted::Expanded(Arc::clone(expanded));
        }
        let expanded = Arc::new(ScopeSet::new(
            scopes.iter().chain(
                scopes
                    .iter()
                    .flat_map(|s| self.implied(s).iter().map(|n| &**n)),
            ),
        ));
        *cached = Some((self.generation, Arc::clone(&expanded)));
        Granted::Expanded(expanded)
    }
}

/// Depth-first walk from the last scope of `path`, collecting what it implies into `seen`;
/// `Err` holds the cycle.
fn close<'s>(
    scope: &'s str,
    direct: &HashMap<&'s str, &'s [&'s str]>,
    seen: &mut Vec<&'s str>,
    path: &mut Vec<&'s str>,
) -> Result<(), Vec<&'s str>> {
    for &narrow in direct.get(scope).copied().unwrap_or(&[]) {
        if let Some(start) = path.iter().position(|s| *s == narrow) {
            let mut cycle = path[start..].to_vec();
            cycle.push(narrow);
            return Err(cycle);
        }
        if seen.contains(&narrow) {
            continue;
        }
        seen.push(narrow);
        path.push(narrow);
        close(narrow, direct, seen, path)?;
        path.pop();
    }
    Ok(())
}
