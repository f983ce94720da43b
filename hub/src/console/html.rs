//! HTML writing with escaping by default: every value from outside (report text, names, ids)
//! goes through [`esc`] (text and attribute values alike), and data for the page's script goes
//! through [`json_data`], which cannot close its `<script type="application/json">` element.

use std::fmt::Write;

/// `text` with `& < > " '` replaced by character references: safe in element content and in
/// quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON for a `<script type="application/json">` block: `<`, `>` and `&` are written as
/// `\u003c` etc., so no value can end the element or open a comment.
pub fn json_data(value: &serde_json::Value) -> String {
    let text = value.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// A small writer of HTML: `text` escapes, `raw` is for markup written in this crate only.
#[derive(Default)]
pub struct Html(String);

impl Html {
    pub fn new() -> Html {
        Html(String::with_capacity(4096))
    }
    /// Markup written here (never a value from outside).
    pub fn raw(&mut self, markup: &str) -> &mut Html {
        self.0.push_str(markup);
        self
    }
    /// A value, escaped.
    pub fn text(&mut self, value: &str) -> &mut Html {
        self.0.push_str(&esc(value));
        self
    }
    /// `<tag attrs>escaped text</tag>`; `attrs` is markup written here.
    pub fn el(&mut self, tag: &str, attrs: &str, value: &str) -> &mut Html {
        let _ = write!(self.0, "<{tag}{}{attrs}>{}</{tag}>", if attrs.is_empty() { "" } else { " " }, esc(value));
        self
    }
    /// A hidden CSRF field for a form.
    pub fn csrf(&mut self, token: &str) -> &mut Html {
        let _ = write!(self.0, "<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(token));
        self
    }
    pub fn finish(self) -> String {
        self.0
    }
}

/// `write!` into an [`Html`] writes markup: format strings are this crate's, and every value
/// from outside in their arguments goes through [`esc`] first.
impl Write for Html {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.push_str(s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_values_is_text() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"y\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;"
        );
        assert_eq!(esc("洪水 flood"), "洪水 flood");
        let mut h = Html::new();
        h.el("td", "class=\"t\"", "<b>").csrf("a\"b");
        assert_eq!(
            h.finish(),
            "<td class=\"t\">&lt;b&gt;</td><input type=\"hidden\" name=\"csrf\" value=\"a&quot;b\">"
        );
    }

    #[test]
    fn json_data_cannot_close_its_script_element() {
        let v = serde_json::json!({"text": "</script><script>alert(1)</script><!--", "n": 1});
        let out = json_data(&v);
        assert!(!out.contains('<') && !out.contains('>'), "{out}");
        let back: serde_json::Value = serde_json::from_str(&out).expect("still JSON");
        assert_eq!(back, v);
    }
}
