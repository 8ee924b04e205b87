//! The inbound half of an XMPP stream, sans-IO: bytes in, [`StreamItem`]s out (the stream header, each
//! complete top-level element as a small owned tree, the stream's end). XML is parsed by quick-xml; this module
//! only finds where a top-level element ends, so a stanza split across reads anywhere is parsed once it is whole.
//! Owns the partial-stanza buffer and nothing else; what a stanza means is `session.rs`'s business.
//! Invariant: the buffer never holds more than [`STANZA_BYTES_MAX`] bytes between calls (a longer stanza is a
//! [`StreamError::StanzaTooLarge`]), and an idle stream holds no buffer at all.

use quick_xml::Reader;
use quick_xml::errors::{Error as XmlError, IllFormedError};
use quick_xml::events::{BytesStart, Event};

/// Largest top-level element a client accepts (bytes of XML). Loadgen stanzas are well under 1 KiB; features
/// and stream errors are small; 64 KiB leaves room for servers that attach a roster or a long error text.
pub const STANZA_BYTES_MAX: usize = 64 * 1024;

/// Nesting a client accepts inside one stanza. Real stanzas nest 3–4 deep.
pub const STANZA_DEPTH_MAX: usize = 32;

/// One XML element with its attributes, text and children, names as written (with any prefix).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    /// The name without its namespace prefix (`stream:features` → `features`).
    pub fn local_name(&self) -> &str {
        self.name.rsplit(':').next().unwrap_or(&self.name)
    }

    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// The first child with this local name.
    pub fn child(&self, local_name: &str) -> Option<&Element> {
        self.children.iter().find(|child| child.local_name() == local_name)
    }
}

/// What the server's stream produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamItem {
    /// `<stream:stream ...>`: a (new) stream began.
    Header,
    /// A complete top-level element: a stanza, features, SASL or stream-management nonza, stream error.
    Element(Element),
    /// `</stream:stream>`.
    End,
}

/// Why the inbound stream cannot be read further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    #[error("a stanza is over {max} bytes", max = STANZA_BYTES_MAX)]
    StanzaTooLarge,
    #[error("a stanza nests deeper than {max} elements", max = STANZA_DEPTH_MAX)]
    TooDeep,
    #[error("text outside any stanza")]
    TextOutsideStanza,
    #[error("a closing tag `{name}` outside any stanza")]
    UnexpectedEnd { name: String },
    #[error("malformed XML: {detail}")]
    Malformed { detail: String },
}

/// The inbound stream's parser. Feed it what the socket read; it keeps only the unfinished element.
#[derive(Debug, Default)]
pub struct StreamParser {
    partial: Vec<u8>,
}

impl StreamParser {
    /// A new connection: forget any partial element.
    pub fn reset(&mut self) {
        self.partial = Vec::new();
    }

    /// Bytes held of an unfinished element.
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// Parses every complete item in what was kept plus `input`, appending them to `items`.
    pub fn handle_input(&mut self, input: &[u8], items: &mut Vec<StreamItem>) -> Result<(), StreamError> {
        if self.partial.is_empty() {
            let consumed = parse_items(input, items)?;
            self.keep(&input[consumed..])?;
        } else {
            let mut joined = std::mem::take(&mut self.partial);
            joined.extend_from_slice(input);
            let consumed = parse_items(&joined, items)?;
            joined.drain(..consumed);
            if joined.len() > STANZA_BYTES_MAX {
                return Err(StreamError::StanzaTooLarge);
            }
            if joined.is_empty() {
                joined = Vec::new();
            }
            self.partial = joined;
        }
        Ok(())
    }

    fn keep(&mut self, rest: &[u8]) -> Result<(), StreamError> {
        if rest.len() > STANZA_BYTES_MAX {
            return Err(StreamError::StanzaTooLarge);
        }
        self.partial.extend_from_slice(rest);
        Ok(())
    }
}

/// Parses complete items from the start of `buf`; returns how many bytes they took.
fn parse_items(buf: &[u8], items: &mut Vec<StreamItem>) -> Result<usize, StreamError> {
    let mut at = 0;
    while at < buf.len() {
        match parse_one(&buf[at..])? {
            Some((item, used)) => {
                debug_assert!(used > 0, "a parsed item takes bytes");
                at += used;
                if let Some(item) = item {
                    items.push(item);
                }
            }
            None => break,
        }
    }
    Ok(at)
}

/// One top-level item from the start of `buf`: `Some((item, bytes))` (item `None` for whitespace, the XML
/// declaration, comments), or `None` when `buf` ends before the item does.
fn parse_one(buf: &[u8]) -> Result<Option<(Option<StreamItem>, usize)>, StreamError> {
    let mut reader = Reader::from_reader(buf);
    let config = reader.config_mut();
    config.check_end_names = false;
    config.trim_text(false);
    let mut stack: Vec<Element> = Vec::new();
    loop {
        let event = match reader.read_event() {
            Ok(event) => event,
            // Markup cut off by the end of the buffer: wait for more bytes.
            Err(XmlError::Syntax(_)) => return Ok(None),
            // A closing tag with no opening one in this buffer: `</stream:stream>`, or garbage.
            Err(XmlError::IllFormed(IllFormedError::UnmatchedEndTag(name))) if stack.is_empty() => {
                if name.rsplit(':').next() == Some("stream") {
                    let position = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX).min(buf.len());
                    return Ok(Some((Some(StreamItem::End), position.max(1))));
                }
                return Err(StreamError::UnexpectedEnd { name });
            }
            Err(error) => return Err(StreamError::Malformed { detail: error.to_string() }),
        };
        let position = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX).min(buf.len());
        match event {
            Event::Eof => return Ok(None),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) if stack.is_empty() => {
                return Ok(Some((None, position)));
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
            Event::Text(text) if stack.is_empty() => {
                if text.iter().all(u8::is_ascii_whitespace) {
                    return Ok(Some((None, position)));
                }
                return Err(StreamError::TextOutsideStanza);
            }
            Event::Text(text) => match text.unescape() {
                Ok(text) => push_text(&mut stack, &text),
                // An entity cut off by the end of the buffer: wait for more bytes.
                Err(_) if position == buf.len() => return Ok(None),
                Err(error) => return Err(StreamError::Malformed { detail: error.to_string() }),
            },
            Event::CData(data) => {
                if stack.is_empty() {
                    return Err(StreamError::TextOutsideStanza);
                }
                push_text(&mut stack, &String::from_utf8_lossy(&data.into_inner()));
            }
            Event::Start(start) => {
                let element = element_of(&start)?;
                if stack.is_empty() && element.local_name() == "stream" {
                    return Ok(Some((Some(StreamItem::Header), position)));
                }
                if stack.len() >= STANZA_DEPTH_MAX {
                    return Err(StreamError::TooDeep);
                }
                stack.push(element);
            }
            Event::Empty(start) => {
                let element = element_of(&start)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => return Ok(Some((Some(StreamItem::Element(element)), position))),
                }
            }
            Event::End(end) => match stack.pop() {
                None => {
                    let name = String::from_utf8_lossy(end.name().as_ref()).into_owned();
                    if name.rsplit(':').next() == Some("stream") {
                        return Ok(Some((Some(StreamItem::End), position)));
                    }
                    return Err(StreamError::UnexpectedEnd { name });
                }
                Some(element) => match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => return Ok(Some((Some(StreamItem::Element(element)), position))),
                },
            },
        }
    }
}

fn push_text(stack: &mut [Element], text: &str) {
    if let Some(top) = stack.last_mut() {
        top.text.push_str(text);
    }
}

fn element_of(start: &BytesStart<'_>) -> Result<Element, StreamError> {
    let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|error| StreamError::Malformed { detail: error.to_string() })?;
        let key = String::from_utf8_lossy(attribute.key.as_ref()).into_owned();
        let value = attribute.unescape_value().map_err(|error| StreamError::Malformed { detail: error.to_string() })?;
        attributes.push((key, value.into_owned()));
    }
    Ok(Element { name, attributes, children: Vec::new(), text: String::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' id='abc' from='localhost' version='1.0'>\
        <stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism>\
        </mechanisms></stream:features> <message from='user2@localhost/x' id='m1'><body>a&amp;b</body></message>\
        <r xmlns='urn:xmpp:sm:3'/></stream:stream>";

    fn names(items: &[StreamItem]) -> Vec<String> {
        items
            .iter()
            .map(|item| match item {
                StreamItem::Header => "header".to_owned(),
                StreamItem::Element(element) => element.name.clone(),
                StreamItem::End => "end".to_owned(),
            })
            .collect()
    }

    #[test]
    fn whole_stream_parses_into_items() {
        let mut parser = StreamParser::default();
        let mut items = Vec::new();
        parser.handle_input(SERVER.as_bytes(), &mut items).expect("valid");
        assert_eq!(names(&items), ["header", "stream:features", "message", "r", "end"]);
        let StreamItem::Element(message) = &items[2] else { panic!("message") };
        assert_eq!(message.attribute("from"), Some("user2@localhost/x"));
        assert_eq!(message.child("body").map(|body| body.text.as_str()), Some("a&b"));
        let StreamItem::Element(features) = &items[1] else { panic!("features") };
        assert_eq!(features.local_name(), "features");
        assert_eq!(parser.buffered(), 0);
    }

    #[test]
    fn split_anywhere_gives_the_same_items() {
        let mut whole = Vec::new();
        StreamParser::default().handle_input(SERVER.as_bytes(), &mut whole).expect("valid");
        for chunk in 1..=SERVER.len() {
            let mut parser = StreamParser::default();
            let mut items = Vec::new();
            for piece in SERVER.as_bytes().chunks(chunk) {
                parser.handle_input(piece, &mut items).expect("valid");
            }
            assert_eq!(items, whole, "chunks of {chunk}");
        }
    }

    #[test]
    fn limits_and_garbage_are_errors() {
        let mut parser = StreamParser::default();
        let mut items = Vec::new();
        parser.handle_input(b"<stream:stream>", &mut items).expect("header");
        let mut huge = b"<message><body>".to_vec();
        huge.resize(STANZA_BYTES_MAX + 100, b'a');
        assert_eq!(parser.handle_input(&huge, &mut items), Err(StreamError::StanzaTooLarge));
        let mut parser = StreamParser::default();
        assert_eq!(parser.handle_input(b"hello", &mut items), Err(StreamError::TextOutsideStanza));
        let mut parser = StreamParser::default();
        assert!(matches!(parser.handle_input(b"</message>", &mut items), Err(StreamError::UnexpectedEnd { .. })));
        let mut parser = StreamParser::default();
        let deep = "<a>".repeat(STANZA_DEPTH_MAX + 1);
        assert_eq!(parser.handle_input(deep.as_bytes(), &mut items), Err(StreamError::TooDeep));
        // Growing in small pieces is bounded too.
        let mut parser = StreamParser::default();
        parser.handle_input(b"<message><body>", &mut items).expect("partial");
        let piece = vec![b'a'; 4096];
        let mut result = Ok(());
        for _ in 0..(STANZA_BYTES_MAX / piece.len() + 2) {
            result = parser.handle_input(&piece, &mut items);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(StreamError::StanzaTooLarge));
    }
}
