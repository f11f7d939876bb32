//! Tool-name globs: `*` matches any run of characters (also none), `?` exactly one character.
//! Nothing else is special, so a tool name never needs escaping; `[`, `]`, `{`, `}` and `\` are
//! refused at load time (see `compile.rs`) because other glob dialects give them a meaning that a
//! policy author could expect here and silently not get.

use std::collections::HashMap;

/// Characters that make a tool name a glob.
pub(super) const WILDCARDS: [char; 2] = ['*', '?'];

/// Characters that other glob dialects treat specially and this one refuses.
pub(super) const RESERVED: [char; 5] = ['[', ']', '{', '}', '\\'];

/// A compiled glob. Matching allocates nothing and runs in O(pattern × name) at worst, with no
/// recursion, so a hostile tool name cannot make it slow.
#[derive(Debug, Clone)]
pub(super) struct Glob {
    pattern: Box<[u8]>,
}

impl Glob {
    pub(super) fn new(pattern: &str) -> Self {
        Self {
            pattern: pattern.as_bytes().into(),
        }
    }

    pub(super) fn is_glob(name: &str) -> bool {
        name.contains(WILDCARDS)
    }

    pub(super) fn matches(&self, name: &str) -> bool {
        // The classic greedy match with one backtrack point: on a mismatch, let the last `*` eat
        // one more character and retry from there. Works on bytes; `?` and the backtrack step
        // advance by whole UTF-8 characters, and literal bytes only match whole characters
        // because both sides are valid UTF-8.
        let (pattern, text) = (&*self.pattern, name.as_bytes());
        let (mut p, mut t) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            match pattern.get(p) {
                Some(b'*') => {
                    p += 1;
                    star = Some((p, t));
                }
                Some(b'?') => {
                    p += 1;
                    t += char_len(text[t]);
                }
                Some(&b) if b == text[t] => {
                    p += 1;
                    t += 1;
                }
                _ => match star {
                    Some((after_star, from)) => {
                        let from = from + char_len(text[from]);
                        star = Some((after_star, from));
                        p = after_star;
                        t = from;
                    }
                    None => return false,
                },
            }
        }
        pattern[p..].iter().all(|&b| b == b'*')
    }
}

/// Up to this many globs a lookup simply tries each in order: a mismatch is usually found in the
/// first few bytes, which beats hashing the name's prefixes.
const LINEAR_MAX: usize = 16;

/// Globs in file order, indexed by their literal prefix (the bytes before the first wildcard), so
/// that with many globs a lookup tries only those whose prefix the name starts with. The answer
/// is the same as trying every glob in order: the first in file order that matches.
#[derive(Debug)]
pub(super) struct GlobList<T> {
    globs: Vec<(Glob, T)>,
    /// Positions in `globs`, ascending, by literal prefix.
    by_prefix: HashMap<Box<[u8]>, Vec<usize>>,
    longest_prefix: usize,
}

impl<T> Default for GlobList<T> {
    fn default() -> Self {
        Self {
            globs: Vec::new(),
            by_prefix: HashMap::new(),
            longest_prefix: 0,
        }
    }
}

impl<T: Copy> GlobList<T> {
    pub(super) fn push(&mut self, glob: Glob, value: T) {
        let prefix_len = glob
            .pattern
            .iter()
            .position(|b| matches!(b, b'*' | b'?'))
            .unwrap_or(glob.pattern.len());
        let prefix: Box<[u8]> = glob.pattern[..prefix_len].into();
        self.longest_prefix = self.longest_prefix.max(prefix_len);
        self.by_prefix
            .entry(prefix)
            .or_default()
            .push(self.globs.len());
        self.globs.push((glob, value));
    }

    /// The value of the first glob, in the order pushed, that matches `name`.
    pub(super) fn first_match(&self, name: &str) -> Option<T> {
        if self.globs.len() <= LINEAR_MAX {
            return self
                .globs
                .iter()
                .find(|(glob, _)| glob.matches(name))
                .map(|&(_, value)| value);
        }
        let bytes = name.as_bytes();
        let mut best: Option<usize> = None;
        for len in 0..=self.longest_prefix.min(bytes.len()) {
            let Some(positions) = self.by_prefix.get(&bytes[..len]) else {
                continue;
            };
            for &pos in positions {
                if best.is_some_and(|best| pos >= best) {
                    break;
                }
                if self.globs[pos].0.matches(name) {
                    best = Some(pos);
                    break;
                }
            }
        }
        best.map(|pos| self.globs[pos].1)
    }
}

/// Length of the UTF-8 character that starts with `lead`.
fn char_len(lead: u8) -> usize {
    match lead {
        0xF0.. => 4,
        0xE0.. => 3,
        0xC0.. => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::{Glob, GlobList};

    #[test]
    fn indexed_glob_list_answers_like_trying_every_glob_in_order() {
        let patterns = [
            "*", "a*", "ab*", "a?c", "team1_*", "team1_x*", "*_admin", "te?m*", "team10_*", "",
        ];
        // Many globs, so the index is used; the same globs repeated keep file order decisive.
        let mut list = GlobList::default();
        let mut all = Vec::new();
        for round in 0..3 {
            for (i, p) in patterns.iter().enumerate().skip(round) {
                list.push(Glob::new(p), all.len());
                all.push((Glob::new(p), i));
            }
        }
        assert!(all.len() > super::LINEAR_MAX);
        for name in [
            "", "a", "abc", "axc", "team1_x", "team10_y", "tezm", "b_admin", "zzz", "é",
        ] {
            let linear = all.iter().position(|(g, _)| g.matches(name));
            assert_eq!(list.first_match(name), linear, "{name}");
        }
    }

    fn matches(pattern: &str, name: &str) -> bool {
        Glob::new(pattern).matches(name)
    }

    #[test]
    fn star_matches_any_run_including_none() {
        assert!(matches("admin_*", "admin_"));
        assert!(matches("admin_*", "admin_delete_user"));
        assert!(matches("*_user", "delete_user"));
        assert!(matches("get_*_info", "get_customer_info"));
        assert!(matches("*", ""));
        assert!(matches("**", "anything"));
        assert!(!matches("admin_*", "admin"));
        assert!(!matches("admin_*", "xadmin_y"));
        assert!(!matches("get_*_info", "get_customer_infos"));
    }

    #[test]
    fn question_mark_matches_exactly_one_character() {
        assert!(matches("v?", "v1"));
        assert!(matches("v?", "vé"));
        assert!(!matches("v?", "v"));
        assert!(!matches("v?", "v12"));
        assert!(matches("?é?", "aéb"));
    }

    #[test]
    fn star_backtracks_past_partial_matches() {
        assert!(matches("*ab", "aab"));
        assert!(matches("a*b*c", "abxbyc"));
        assert!(matches("*é", "ééé"));
        assert!(!matches("a*b*c", "abxbyd"));
    }

    #[test]
    fn glob_is_case_sensitive_like_tool_names() {
        assert!(!matches("admin_*", "Admin_x"));
    }

    #[test]
    fn hostile_names_stay_fast() {
        let name = "a".repeat(10_000);
        assert!(!matches("*a*a*a*a*a*a*b", &name));
    }
}
