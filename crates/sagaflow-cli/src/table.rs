//! Plain-text tables: columns aligned by computing each one's width, two spaces apart.

/// What an empty cell shows, so that columns never look shifted.
pub const EMPTY_CELL: &str = "-";

/// Renders `rows` under `headers`, each column as wide as its widest cell. Cells are cleaned
/// to a single line; the last column is not padded, so no line ends in spaces.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let cleaned: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| clean(cell)).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &cleaned {
        for (column, cell) in row.iter().enumerate() {
            let width = cell.chars().count();
            match widths.get_mut(column) {
                Some(w) => *w = (*w).max(width),
                None => widths.push(width),
            }
        }
    }
    let mut out = String::new();
    let header_row: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header_row).chain(&cleaned) {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate() {
            if column > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = widths[column].saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Lines of `label  value`, the values aligned after the longest label.
pub fn render_fields(fields: &[(&str, String)]) -> String {
    let width = fields
        .iter()
        .map(|(label, _)| label.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (label, value) in fields {
        let line = format!("{label:<width$}  {}", clean(value));
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// One line, no control characters, and a dash for nothing.
fn clean(cell: &str) -> String {
    let line: String = cell
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    if line.is_empty() {
        EMPTY_CELL.to_owned()
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let table = render(
            &["STEP", "STATUS", "ERROR"],
            &[
                row(&["reserve-stock", "compensated", ""]),
                row(&["charge-card", "failed", "card declined"]),
            ],
        );
        assert_eq!(
            table,
            "STEP           STATUS       ERROR\n\
             reserve-stock  compensated  -\n\
             charge-card    failed       card declined\n"
        );
    }

    #[test]
    fn a_header_wider_than_its_cells_sets_the_width() {
        let table = render(&["ATTEMPTS", "X"], &[row(&["1", "a"])]);
        assert_eq!(table, "ATTEMPTS  X\n1         a\n");
    }

    #[test]
    fn widths_count_characters_not_bytes() {
        let table = render(&["A", "B"], &[row(&["ééé", "x"]), row(&["e", "y"])]);
        assert_eq!(table, "A    B\nééé  x\ne    y\n");
    }

    #[test]
    fn multi_line_cells_become_one_line() {
        let table = render(&["A", "B"], &[row(&["two\nlines", "tab\there"])]);
        assert_eq!(table, "A          B\ntwo lines  tab here\n");
    }

    #[test]
    fn no_rows_is_just_the_header() {
        assert_eq!(render(&["ID", "STATUS"], &[]), "ID  STATUS\n");
    }

    #[test]
    fn fields_align_after_the_longest_label() {
        let fields = render_fields(&[("id", "0193".to_owned()), ("definition", "x v1".to_owned())]);
        assert_eq!(fields, "id          0193\ndefinition  x v1\n");
    }
}
