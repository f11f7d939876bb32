//! "Did you mean …?" for misspelt names: the nearest of the known names by edit distance. Used
//! by the config file, its `SCOPEGATE_*` variables, the policy and the cases file; not the
//! reporting itself.

/// The candidate nearest to `word`, if it is near enough to be a likely misspelling: at most
/// a third of the word's length away (and at least one edit), so `leewy` finds `leeway` while
/// `SERVICE_HOST` finds nothing.
pub fn nearest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|candidate| (distance(word, candidate), candidate))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, candidate)| candidate)
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions and swaps of two
/// neighbours each cost one, so `auht` is one edit from `auth`.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for (i, row) in d.chunks_mut(width).enumerate() {
        row[0] = i;
    }
    for (j, cell) in d.iter_mut().take(width).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelling_finds_the_key_it_was_meant_to_be() {
        assert_eq!(
            nearest("leewy", ["issuer", "leeway", "audiences"]),
            Some("leeway")
        );
        assert_eq!(
            nearest("auht_issuer", ["auth_issuer", "auth_leeway"]),
            Some("auth_issuer")
        );
    }

    #[test]
    fn an_unrelated_name_finds_nothing() {
        assert_eq!(
            nearest("service_host", ["auth_issuer", "listen_address"]),
            None
        );
        assert_eq!(nearest("x", ["y_z"]), None);
    }
}
