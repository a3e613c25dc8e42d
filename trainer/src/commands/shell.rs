//! Command lines as text, for the model card: words joined with the quoting a POSIX shell
//! needs, and split back.

/// Whether `word` can stand unquoted: plain characters, or a whole `<placeholder>` that the
/// reader replaces (the card's `<utkface>`).
fn plain(word: &str) -> bool {
    let placeholder = word.len() > 2
        && word.starts_with('<')
        && word.ends_with('>')
        && word[1..word.len() - 1]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    placeholder
        || (!word.is_empty()
            && word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./,:=+@%".contains(c)))
}

/// `words` as one command line.
pub fn join<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| {
            let w = w.as_ref();
            if plain(w) {
                w.to_string()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The words of a line written by [`join`].
pub fn split(line: &str) -> Vec<String> {
    let (mut words, mut word) = (vec![], String::new());
    let (mut quoted, mut escaped, mut started) = (false, false, false);
    for c in line.chars() {
        if escaped {
            word.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\'' => {
                quoted = !quoted;
                started = true;
            }
            '\\' if !quoted => {
                escaped = true;
                started = true;
            }
            ' ' if !quoted => {
                if started {
                    words.push(std::mem::take(&mut word));
                }
                started = false;
            }
            _ => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_through_the_line() {
        let words = [
            "train",
            "--data",
            "<utkface>",
            "--out",
            "runs/a b",
            "--label-fixes",
            "it's.csv",
            "",
            "x<y",
        ];
        let line = join(&words);
        assert!(
            line.starts_with("train --data <utkface> --out 'runs/a b' "),
            "{line}"
        );
        assert_eq!(split(&line), words);
    }
}
