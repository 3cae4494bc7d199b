//! CORE: which scopes a tool or table needs, and whether a principal's scopes (with the
//! configured implications) cover them.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopePolicy {
    /// Tool name to the scope it needs.
    pub tools: BTreeMap<String, String>,
    /// Table (`schema.table`) to the extra scope it needs.
    pub tables: BTreeMap<String, String>,
    /// Scope to the scopes it implies (applied transitively).
    pub implies: BTreeMap<String, BTreeSet<String>>,
}

impl ScopePolicy {
    /// The granted scopes closed under the implications.
    pub fn effective(&self, granted: &BTreeSet<String>) -> BTreeSet<String> {
        let mut out = granted.clone();
        let mut todo: Vec<String> = granted.iter().cloned().collect();
        while let Some(s) = todo.pop() {
            if let Some(more) = self.implies.get(&s) {
                for m in more {
                    if out.insert(m.clone()) {
                        todo.push(m.clone());
                    }
                }
            }
        }
        out
    }

    /// The scopes a call needs that `granted` lacks: the tool's scope, and each read table's.
    /// Empty means allowed. An unknown tool needs a scope nobody has.
    pub fn missing(
        &self,
        granted: &BTreeSet<String>,
        tool: &str,
        tables: &[String],
    ) -> Vec<String> {
        let have = self.effective(granted);
        let mut needed: BTreeSet<String> = BTreeSet::new();
        match self.tools.get(tool) {
            Some(s) => {
                needed.insert(s.clone());
            }
            None => {
                needed.insert(format!("tool:{tool}"));
            }
        }
        for t in tables {
            if let Some(s) = self.tables.get(t) {
                needed.insert(s.clone());
            }
        }
        needed.into_iter().filter(|s| !have.contains(s)).collect()
    }

    /// Every scope the policy mentions (for `scopes_supported` and the stdio default).
    pub fn all_scopes(&self) -> BTreeSet<String> {
        let mut all: BTreeSet<String> = self.tools.values().cloned().collect();
        all.extend(self.tables.values().cloned());
        for (k, v) in &self.implies {
            all.insert(k.clone());
            all.extend(v.iter().cloned());
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ScopePolicy {
        ScopePolicy {
            tools: [("query", "db:read"), ("admin_tool", "db:admin")]
                .into_iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            tables: [("public.salaries".to_string(), "db:hr".to_string())].into(),
            implies: [(
                "db:admin".to_string(),
                ["db:read".to_string()].into_iter().collect(),
            )]
            .into(),
        }
    }

    fn set(s: &[&str]) -> BTreeSet<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn admin_implies_read_but_not_the_reverse() {
        let p = policy();
        assert!(p.missing(&set(&["db:admin"]), "query", &[]).is_empty());
        assert_eq!(
            p.missing(&set(&["db:read"]), "admin_tool", &[]),
            vec!["db:admin"]
        );
    }

    #[test]
    fn tables_add_their_scope_and_unknown_tools_need_the_impossible() {
        let p = policy();
        let t = vec!["public.salaries".to_string()];
        assert_eq!(p.missing(&set(&["db:read"]), "query", &t), vec!["db:hr"]);
        assert_eq!(p.missing(&set(&[]), "query", &t), vec!["db:hr", "db:read"]);
        assert_eq!(
            p.missing(&set(&["db:admin"]), "nope", &[]),
            vec!["tool:nope"]
        );
    }
}
