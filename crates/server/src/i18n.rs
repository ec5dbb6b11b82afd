//! Japanese first, English on request: Fluent files compiled in.

use std::collections::HashMap;

use fluent_bundle::{FluentBundle, FluentResource};

const JA: &str = include_str!("../i18n/ja.ftl");
const EN: &str = include_str!("../i18n/en.ftl");

pub struct I18n {
    ja: HashMap<String, String>,
    en: HashMap<String, String>,
}

fn load(lang: &str, src: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let res = match FluentResource::try_new(src.to_owned()) {
        Ok(r) => r,
        Err((r, errs)) => {
            tracing::error!(lang, errors = errs.len(), "fluent parse errors");
            r
        }
    };
    let Ok(langid) = lang.parse() else { return out };
    let mut bundle = FluentBundle::new(vec![langid]);
    bundle.set_use_isolating(false);
    // Message ids: `id = value` lines that start at column 0.
    let ids: Vec<String> = src
        .lines()
        .filter_map(|l| l.split_once(" = ").map(|(id, _)| id))
        .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .map(str::to_owned)
        .collect();
    // A duplicate id keeps the last one rather than losing the whole file.
    bundle.add_resource_overriding(res);
    for id in ids {
        if let Some(pattern) = bundle.get_message(&id).and_then(|m| m.value()) {
            let mut errs = vec![];
            let v = bundle.format_pattern(pattern, None, &mut errs).into_owned();
            out.insert(id, v);
        }
    }
    out
}

impl I18n {
    pub fn new() -> Self {
        Self { ja: load("ja", JA), en: load("en", EN) }
    }

    pub fn t(&self, lang: &str, key: &str) -> String {
        let map = if lang == "en" { &self.en } else { &self.ja };
        map.get(key).or_else(|| self.ja.get(key)).cloned().unwrap_or_else(|| key.to_owned())
    }

    pub fn keys(&self, lang: &str) -> Vec<&String> {
        (if lang == "en" { &self.en } else { &self.ja }).keys().collect()
    }
}

impl Default for I18n {
    fn default() -> Self {
        Self::new()
    }
}

/// A translator bound to a language, handed to templates.
#[derive(Clone, Copy)]
pub struct Tr<'a> {
    pub i18n: &'a I18n,
    pub lang: &'a str,
}

impl Tr<'_> {
    pub fn t(&self, key: &str) -> String {
        self.i18n.t(self.lang, key)
    }
    pub fn is_en(&self) -> bool {
        self.lang == "en"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    fn ids(src: &str) -> Vec<&str> {
        src.lines().filter_map(|l| l.split_once(" = ").map(|(id, _)| id)).collect()
    }

    /// Each message id once per file, and the same ids in Japanese and English.
    #[test]
    fn catalogues_are_complete_and_unique() {
        for src in [super::JA, super::EN] {
            let v = ids(src);
            let mut set = std::collections::HashSet::new();
            for id in &v {
                assert!(set.insert(*id), "duplicate message id {id}");
            }
        }
        let ja: std::collections::BTreeSet<_> = ids(super::JA).into_iter().collect();
        let en: std::collections::BTreeSet<_> = ids(super::EN).into_iter().collect();
        assert_eq!(ja.symmetric_difference(&en).collect::<Vec<_>>(), Vec::<&&str>::new());
        let i = super::I18n::new();
        assert_eq!(i.t("ja", "alarms-none"), "未確認の警報はありません。");
    }
}
