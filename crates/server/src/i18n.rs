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
    if bundle.add_resource(res).is_err() {
        return out;
    }
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
