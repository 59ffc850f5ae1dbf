//! A text grid with spanning cells, laid out the way benchstat's tables are.
//!
//! Each cell starts at a column, may span several, and carries a left margin (a separator
//! such as `" │ "` or `" ± "`) that is drawn right-aligned in a margin area the width of
//! its column's widest margin. A column is as wide as its widest single cell; a spanning
//! cell that does not fit widens the columns it spans, the widest first, except columns
//! marked *fixed*, which keep their width (so that a long header widens the outer columns
//! of a group, not the gaps between `±` and the range). Widths count characters, not bytes:
//! `µ` and `│` are one column each.

/// How a cell sits in its width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Align {
    /// Flush left, no padding after.
    Left,
    /// Centered, the odd space on the right (and not drawn).
    Center,
    /// Flush right.
    Right,
}

#[derive(Debug)]
struct Cell {
    row: usize,
    col: usize,
    span: usize,
    text: String,
    margin: String,
    align: Align,
}

/// A grid filled row by row, left to right.
#[derive(Debug, Default)]
pub(super) struct Grid {
    cells: Vec<Cell>,
    cols: usize,
    fixed: Vec<bool>,
    row: usize,
    col: usize,
}

fn width(s: &str) -> usize {
    s.chars().count()
}

impl Grid {
    /// Starts a new row (the first call starts row 0).
    pub(super) fn row(&mut self) -> &mut Self {
        if !self.cells.is_empty() {
            self.row += 1;
        }
        self.col = 0;
        self
    }

    /// Moves to column `col` of the current row (never backwards).
    pub(super) fn at(&mut self, col: usize) -> &mut Self {
        debug_assert!(col >= self.col, "columns are filled left to right");
        self.col = col.max(self.col);
        self
    }

    /// The column the next cell goes to.
    pub(super) fn col(&self) -> usize {
        self.col
    }

    /// Adds a one-column cell with the default margin (one space, none in column 0 or
    /// for an empty cell).
    pub(super) fn cell(&mut self, text: impl Into<String>, align: Align) -> &mut Self {
        self.span(1, text, align, None)
    }

    /// Adds a cell over `span` columns; `margin` replaces the default margin.
    pub(super) fn span(
        &mut self,
        span: usize,
        text: impl Into<String>,
        align: Align,
        margin: Option<&str>,
    ) -> &mut Self {
        let text = text.into();
        let margin = match margin {
            Some(m) => m.to_string(),
            None if self.col == 0 || text.is_empty() => String::new(),
            None => " ".to_string(),
        };
        self.cells.push(Cell {
            row: self.row,
            col: self.col,
            span,
            text,
            margin,
            align,
        });
        self.col += span;
        self.cols = self.cols.max(self.col);
        self
    }

    /// Keeps column `col` at the width of its own cells when spanning cells need room.
    pub(super) fn fix_width(&mut self, col: usize) {
        if self.fixed.len() <= col {
            self.fixed.resize(col + 1, false);
        }
        self.fixed[col] = true;
    }

    fn is_fixed(&self, col: usize) -> bool {
        self.fixed.get(col).copied().unwrap_or(false)
    }

    /// Column widths (margin included) that fit every cell.
    fn widths(&self, margins: &[usize]) -> Vec<usize> {
        let mut widths = vec![0usize; self.cols];
        let mut by_span: Vec<&Cell> = self.cells.iter().collect();
        by_span.sort_by_key(|c| c.span);
        for cell in by_span {
            let need = width(&cell.text) + margins[cell.col];
            let cols = cell.col..cell.col + cell.span;
            if cell.span == 1 {
                widths[cell.col] = widths[cell.col].max(need);
                continue;
            }
            let have: usize = widths[cols.clone()].iter().sum();
            if have >= need {
                continue;
            }
            let mut need = need as isize;
            let mut growable: Vec<usize> = Vec::new();
            for c in cols {
                if self.is_fixed(c) {
                    need -= widths[c] as isize;
                } else {
                    growable.push(c);
                }
            }
            growable.sort_by_key(|&c| std::cmp::Reverse(widths[c]));
            let mut left = growable.len() as isize;
            for c in growable {
                let share = (need + left - 1).div_euclid(left).max(0) as usize;
                widths[c] = widths[c].max(share);
                need -= widths[c] as isize;
                left -= 1;
            }
        }
        widths
    }

    /// Renders the grid, one line per row, each ending in a newline.
    pub(super) fn render(mut self) -> String {
        let mut margins = vec![0usize; self.cols];
        for c in &self.cells {
            margins[c.col] = margins[c.col].max(width(&c.margin));
        }
        let widths = self.widths(&margins);
        let mut starts = Vec::with_capacity(self.cols + 1);
        let mut at = 0;
        for w in &widths {
            starts.push(at);
            at += w;
        }
        starts.push(at);

        self.cells.sort_by_key(|c| (c.row, c.col));
        let mut out = String::new();
        let (mut row, mut pos) = (0, 0);
        for cell in &self.cells {
            if cell.text.trim().is_empty() && cell.margin.trim().is_empty() {
                continue;
            }
            while row < cell.row {
                out.push('\n');
                row += 1;
                pos = 0;
            }
            let margin_width = margins[cell.col];
            push_spaces(&mut out, starts[cell.col].saturating_sub(pos));
            push_spaces(&mut out, margin_width.saturating_sub(width(&cell.margin)));
            out.push_str(&cell.margin);
            pos = starts[cell.col] + margin_width;
            let room = starts[cell.col + cell.span] - starts[cell.col] - margin_width;
            let pad = room.saturating_sub(width(&cell.text));
            let lead = match cell.align {
                Align::Left => 0,
                Align::Center => pad / 2,
                Align::Right => pad,
            };
            push_spaces(&mut out, lead);
            out.push_str(&cell.text);
            pos += lead + width(&cell.text);
        }
        if !self.cells.is_empty() {
            out.push('\n');
        }
        out
    }
}

fn push_spaces(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_fit_their_widest_cell_counting_characters() {
        let mut g = Grid::default();
        g.row().cell("name", Align::Left).cell("1.5µ", Align::Right);
        g.row().cell("n", Align::Left).cell("10.25µ", Align::Right);
        assert_eq!(g.render(), "name   1.5µ\nn    10.25µ\n");
    }

    #[test]
    fn a_spanning_header_widens_the_free_columns_and_draws_its_margin() {
        let mut g = Grid::default();
        g.row()
            .at(1)
            .span(2, "a long header", Align::Center, Some(" │ "))
            .at(3)
            .span(1, "", Align::Left, Some(" │"));
        g.fix_width(2);
        g.row().cell("x", Align::Left).cell("1", Align::Right).span(
            1,
            "5%",
            Align::Right,
            Some(" ± "),
        );
        let out = g.render();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "  │ a long header │");
        // The header needs 16 columns over columns 1 and 2; column 2 is fixed at its own
        // 5, so column 1 grows to 11, and the value sits right-aligned in it.
        assert_eq!(lines[1], "x          1 ± 5%");
    }
}
