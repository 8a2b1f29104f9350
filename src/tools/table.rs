//! Plain-text tables for terminal output: columns padded to their widest
//! cell (counted in characters, so `°C` is two wide, not three), trailing
//! spaces trimmed.

/// Renders `rows` as aligned columns, each line prefixed with `indent`.
pub fn render(rows: &[Vec<String>], indent: &str) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::from(indent);
        for (c, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < row.len() {
                let pad = widths[c] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_by_characters_and_trims() {
        let rows = vec![
            vec!["unit".to_string(), "v".to_string(), String::new()],
            vec!["°C".to_string(), "25.5".to_string(), String::new()],
        ];
        assert_eq!(render(&rows, "  "), "  unit  v\n  °C    25.5\n");
    }
}
