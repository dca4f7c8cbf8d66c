//! `GET /`: the live page, one self-contained document (inline CSS and script, no network
//! beyond its own `/events`), styled with `report.html`'s stylesheet so both read as one product.

use std::sync::OnceLock;

const TEMPLATE: &str = include_str!("page.html");
const CSS: &str = include_str!("../report/html/page.css");
const JS: &str = include_str!("page.js");

/// The page, assembled once.
pub fn html() -> &'static str {
    static PAGE: OnceLock<String> = OnceLock::new();
    PAGE.get_or_init(|| TEMPLATE.replace("/*CSS*/", CSS).replace("/*JS*/", JS))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_is_self_contained() {
        let page = super::html();
        assert!(page.contains("new EventSource(\"/events\")"));
        assert!(page.contains(".tiles {"), "the report's stylesheet is inlined");
        assert!(!page.contains("/*CSS*/") && !page.contains("/*JS*/"));
        assert!(!page.contains("http://") && !page.contains("https://"), "nothing from the network");
    }
}
