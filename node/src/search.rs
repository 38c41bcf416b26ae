//! Full-text search of the local history: how text becomes index terms,
//! what a query means, and the snippet a hit shows.
//!
//! The same [`tokens`] function cuts messages when they are indexed and
//! queries when they run, so a query finds exactly what its words would
//! have been indexed as. The index itself lives in the store's database
//! (see `store/search.rs`), updated in the transaction that stores the
//! message; `docs/search.md` describes both.

use serde::Serialize;
use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

/// Longest term indexed, in bytes once normalised: longer "words" (keys,
/// base64, URLs' long paths) are not what people search for.
pub const MAX_TERM_LEN: usize = 64;
/// Longest query accepted, in bytes.
pub const MAX_QUERY_LEN: usize = 1024;
/// Most words, phrases and prefixes in one query.
pub const MAX_QUERY_CLAUSES: usize = 16;
/// Most results one query returns.
pub const MAX_SEARCH_LIMIT: usize = 200;

/// A word of a text, normalised, with where it is in the original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// NFKC, case folded, diacritics removed.
    pub term: String,
    /// Byte range in the original text.
    pub start: usize,
    pub end: usize,
}

/// The words of `text` (Unicode word boundaries, UAX #29) as index terms:
/// compatibility forms unified (NFKC: `ﬁ` is `fi`, full-width `Ａ` is `a`),
/// case folded, diacritics removed (`Café` is `cafe`). Han ideographs and
/// hiragana come out one character per term (so `日本語` is three terms,
/// searched as a phrase); katakana runs, Hangul words and Latin words stay
/// whole. Terms longer than [`MAX_TERM_LEN`] are left out.
pub fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    for (start, word) in text.unicode_word_indices() {
        push_token(&mut out, start, word);
        // UAX #29 keeps `holiday.jpg`, `example.com`, `snake_case` and
        // `12:30` whole: their parts are terms too, so `holiday` finds
        // `holiday.jpg` (the whole still matches as typed).
        if word.contains(JOINERS) {
            let mut at = 0;
            for part in word.split(JOINERS) {
                push_token(&mut out, start + at, part);
                at += part.len() + 1;
            }
        }
    }
    out
}

/// What joins the parts of a word UAX #29 keeps whole (all one byte).
const JOINERS: [char; 4] = ['.', '_', ':', '\''];

fn push_token(out: &mut Vec<Token>, start: usize, word: &str) {
    let term = normalize(word);
    if !term.is_empty() && term.len() <= MAX_TERM_LEN {
        out.push(Token {
            term,
            start,
            end: start + word.len(),
        });
    }
}

/// One word in its index form (see [`tokens`]).
pub fn normalize(word: &str) -> String {
    // Most words are ASCII: already NFKC, no diacritics, simple case.
    if word.is_ascii() {
        return word.to_ascii_lowercase();
    }
    let mut folded = String::with_capacity(word.len());
    for c in word.nfkd().filter(|c| !is_diacritic(*c)) {
        match c {
            // Full case folding where lowercasing is not enough.
            'ß' | 'ẞ' => folded.push_str("ss"),
            'ς' => folded.push('σ'),
            c => folded.extend(c.to_lowercase()),
        }
    }
    folded.nfkc().collect()
}

/// Marks that only decorate a letter, dropped for search: the combining
/// diacritical marks (accents, umlauts, cedillas) and Hebrew and Arabic
/// vowel points. Marks that make a different letter stay (Japanese
/// voicing marks, Indic vowel signs).
fn is_diacritic(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{FE20}'..='\u{FE2F}'
        | '\u{0591}'..='\u{05C7}'
        | '\u{064B}'..='\u{065F}'
        | '\u{0670}')
}

/// A parsed query: every clause must match (AND).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub clauses: Vec<Clause>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clause {
    /// One term.
    Word(String),
    /// Terms that must appear next to each other, in this order: a quoted
    /// phrase, or a word that normalises to several terms (`e-mail`,
    /// `日本語`).
    Phrase(Vec<String>),
    /// Any term starting with this (`meet*`).
    Prefix(String),
}

impl Clause {
    /// The terms a hit's text is checked and marked against.
    pub fn terms(&self) -> &[String] {
        match self {
            Self::Word(t) | Self::Prefix(t) => std::slice::from_ref(t),
            Self::Phrase(ts) => ts,
        }
    }
}

/// Why a query was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("the query has no words to search for")]
    Empty,
    #[error("the query is {0} bytes; at most {MAX_QUERY_LEN} are accepted")]
    TooLong(usize),
    #[error("the query has more than {MAX_QUERY_CLAUSES} words, phrases and prefixes")]
    TooManyClauses,
    #[error("a prefix needs at least one letter or digit before the `*`")]
    EmptyPrefix,
}

impl Query {
    /// Parses words, `"quoted phrases"` and `prefix*`. Everything is
    /// required; punctuation between words is ignored like in the index.
    pub fn parse(text: &str) -> Result<Self, QueryError> {
        if text.len() > MAX_QUERY_LEN {
            return Err(QueryError::TooLong(text.len()));
        }
        let mut clauses = Vec::new();
        // Quotes split the text: odd parts are phrases.
        for (i, part) in text.split('"').enumerate() {
            if i % 2 == 1 {
                let terms: Vec<String> = tokens(part).into_iter().map(|t| t.term).collect();
                push_terms(&mut clauses, terms);
                continue;
            }
            for word in part.split_whitespace() {
                if let Some(stem) = word.strip_suffix('*') {
                    let mut terms: Vec<String> = tokens(stem).into_iter().map(|t| t.term).collect();
                    match terms.pop() {
                        // `e-mai*`: `e` must appear, then a term starting `mai`.
                        Some(last) => {
                            push_terms(&mut clauses, terms);
                            clauses.push(Clause::Prefix(last));
                        }
                        None => return Err(QueryError::EmptyPrefix),
                    }
                } else {
                    let terms = tokens(word).into_iter().map(|t| t.term).collect();
                    push_terms(&mut clauses, terms);
                }
            }
        }
        if clauses.is_empty() {
            return Err(QueryError::Empty);
        }
        if clauses.len() > MAX_QUERY_CLAUSES {
            return Err(QueryError::TooManyClauses);
        }
        Ok(Self { clauses })
    }

    /// Whether `text`'s terms satisfy every phrase (words and prefixes are
    /// settled by the index alone).
    pub fn phrases_match(&self, text: &str) -> bool {
        let terms: Vec<String> = tokens(text).into_iter().map(|t| t.term).collect();
        self.clauses.iter().all(|c| match c {
            Clause::Phrase(p) => terms.windows(p.len()).any(|w| w == p.as_slice()),
            Clause::Word(_) | Clause::Prefix(_) => true,
        })
    }

    fn marks(&self, term: &str) -> bool {
        self.clauses.iter().any(|c| match c {
            Clause::Word(w) => w == term,
            Clause::Phrase(p) => p.iter().any(|w| w == term),
            Clause::Prefix(p) => term.starts_with(p.as_str()),
        })
    }
}

fn push_terms(clauses: &mut Vec<Clause>, mut terms: Vec<String>) {
    match terms.len() {
        0 => {}
        1 => clauses.extend(terms.pop().map(Clause::Word)),
        _ => clauses.push(Clause::Phrase(terms)),
    }
}

/// Part of a hit's text around its first match, with every match marked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snippet {
    pub text: String,
    /// Byte ranges of `text` that matched, in order.
    pub marks: Vec<(usize, usize)>,
}

/// Texts up to this many bytes are shown whole.
const SNIPPET_LEN: usize = 160;

/// The snippet of `text` for `query`: about [`SNIPPET_LEN`] bytes from a
/// little before the first match, cut at word boundaries, `…` where cut.
pub fn snippet(query: &Query, text: &str) -> Snippet {
    let tokens = tokens(text);
    let matched: Vec<&Token> = tokens.iter().filter(|t| query.marks(&t.term)).collect();
    let (from, to) = if text.len() <= SNIPPET_LEN {
        (0, text.len())
    } else {
        let first = matched.first().map_or(0, |t| t.start);
        // Start a few words before the first match.
        let before = tokens
            .iter()
            .filter(|t| t.start <= first)
            .rev()
            .nth(3)
            .map_or(0, |t| t.start);
        let end = tokens
            .iter()
            .take_while(|t| t.end <= before + SNIPPET_LEN)
            .last()
            .map_or(text.len(), |t| t.end)
            .max(first);
        (before, end)
    };
    let mut out = String::new();
    if from > 0 {
        out.push('…');
    }
    let offset = out.len();
    out.push_str(&text[from..to]);
    let marks = matched
        .iter()
        .filter(|t| t.start >= from && t.end <= to)
        .map(|t| (t.start - from + offset, t.end - from + offset))
        .collect();
    if to < text.len() {
        out.push('…');
    }
    Snippet { text: out, marks }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(text: &str) -> Vec<String> {
        tokens(text).into_iter().map(|t| t.term).collect()
    }

    #[test]
    fn normalisation_folds_case_width_and_diacritics() {
        assert_eq!(terms("Café CRÈME"), ["cafe", "creme"]);
        assert_eq!(terms("Straße"), ["strasse"]);
        assert_eq!(terms("ﬁne ＡＢＣ"), ["fine", "abc"]);
        assert_eq!(terms("ΟΔΟΣ οδος"), ["οδοσ", "οδοσ"]);
        assert_eq!(terms("Köln"), terms("koln"));
    }

    #[test]
    fn cjk_is_split_into_characters_and_kana_words() {
        assert_eq!(
            terms("日本語のメッセージ"),
            ["日", "本", "語", "の", "メッセージ"]
        );
        assert_eq!(terms("안녕하세요 친구"), ["안녕하세요", "친구"]);
        // Voicing marks and vowel signs make other letters: kept.
        assert_ne!(terms("ジ"), terms("シ"));
        assert_eq!(terms("नमस्ते"), ["नमस्ते"]);
    }

    #[test]
    fn joined_words_are_indexed_whole_and_in_parts() {
        assert_eq!(terms("holiday.jpg"), ["holiday.jpg", "holiday", "jpg"]);
        assert_eq!(terms("my_notes"), ["my_notes", "my", "notes"]);
        let t = tokens("see example.com");
        assert_eq!((t[2].start, t[2].end), (4, 11));
        assert_eq!((t[3].start, t[3].end), (12, 15));
    }

    #[test]
    fn long_terms_are_not_indexed() {
        let key = "a".repeat(MAX_TERM_LEN + 1);
        assert_eq!(terms(&format!("x {key} y")), ["x", "y"]);
    }

    #[test]
    fn a_query_has_words_phrases_and_prefixes() {
        let q = Query::parse(r#"Lunch "see you soon" meet* e-mail 日本語"#).unwrap();
        assert_eq!(
            q.clauses,
            [
                Clause::Word("lunch".into()),
                Clause::Phrase(vec!["see".into(), "you".into(), "soon".into()]),
                Clause::Prefix("meet".into()),
                Clause::Phrase(vec!["e".into(), "mail".into()]),
                Clause::Phrase(vec!["日".into(), "本".into(), "語".into()]),
            ]
        );
        assert_eq!(Query::parse("  ?! "), Err(QueryError::Empty));
        assert_eq!(Query::parse("*"), Err(QueryError::EmptyPrefix));
        assert!(matches!(
            Query::parse(&"a ".repeat(MAX_QUERY_CLAUSES + 1)),
            Err(QueryError::TooManyClauses)
        ));
    }

    #[test]
    fn phrases_are_checked_in_order() {
        let q = Query::parse(r#""see you""#).unwrap();
        assert!(q.phrases_match("OK, see you tomorrow"));
        assert!(!q.phrases_match("you see, tomorrow"));
    }

    #[test]
    fn a_snippet_marks_every_match_near_the_first() {
        let q = Query::parse("lighthouse meet*").unwrap();
        let s = snippet(&q, "Let us meet at the Lighthouse");
        assert_eq!(s.text, "Let us meet at the Lighthouse");
        let marked: Vec<&str> = s.marks.iter().map(|&(a, b)| &s.text[a..b]).collect();
        assert_eq!(marked, ["meet", "Lighthouse"]);

        let long = format!(
            "{} the lighthouse keeper {}",
            "word ".repeat(60),
            "tail ".repeat(60)
        );
        let s = snippet(&q, &long);
        assert!(s.text.starts_with('…') && s.text.ends_with('…'));
        assert!(s.text.len() <= SNIPPET_LEN + 8);
        let marked: Vec<&str> = s.marks.iter().map(|&(a, b)| &s.text[a..b]).collect();
        assert_eq!(marked, ["lighthouse"]);
    }
}
