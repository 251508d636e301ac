//! The result of an operation as a small tree, built once and written either as the Query
//! protocol's XML or as the JSON form the service answers when a client sends
//! `Accept: application/json`. Keeping one tree means both forms always carry the same members.

/// A scalar member value.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Text(String),
    /// Epoch milliseconds: ISO-8601 in XML, epoch seconds (a number) in JSON.
    Time(i64),
    Bool(bool),
    Int(i64),
    /// An optional member without a value: absent from XML, `null` in JSON (as the service sends it).
    Null,
}

/// One member of a structure.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Leaf(String, Scalar),
    Struct(String, Vec<Node>),
    List(String, Vec<Item>),
}

/// One element of a list.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Scalar(Scalar),
    Struct(Vec<Node>),
}

/// Builds the members of a Result element.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Doc {
    nodes: Vec<Node>,
    /// Structures opened and not yet closed: their tag and members so far.
    open: Vec<(String, Vec<Node>)>,
    /// Set when this document is one scalar list element.
    scalar: Option<Scalar>,
}

impl Doc {
    /// An empty document.
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, node: Node) -> &mut Self {
        match self.open.last_mut() {
            Some((_, members)) => members.push(node),
            None => self.nodes.push(node),
        }
        self
    }

    /// Starts a structure member; members added until [`Doc::close`] go inside it.
    pub fn open(&mut self, tag: &str) -> &mut Self {
        self.open.push((tag.to_string(), Vec::new()));
        self
    }

    /// Ends the structure [`Doc::open`] started.
    pub fn close(&mut self, tag: &str) -> &mut Self {
        match self.open.pop() {
            Some((open_tag, members)) => {
                debug_assert_eq!(open_tag, tag, "structures must close in order");
                self.push(Node::Struct(open_tag, members))
            }
            None => {
                debug_assert!(false, "close({tag}) without open");
                self
            }
        }
    }

    /// A text member.
    pub fn leaf(&mut self, tag: &str, text: &str) -> &mut Self {
        self.push(Node::Leaf(tag.to_string(), Scalar::Text(text.to_string())))
    }

    /// An optional text member.
    pub fn opt(&mut self, tag: &str, text: Option<&str>) -> &mut Self {
        let value = text.map_or(Scalar::Null, |t| Scalar::Text(t.to_string()));
        self.push(Node::Leaf(tag.to_string(), value))
    }

    /// A timestamp member (epoch milliseconds).
    pub fn time(&mut self, tag: &str, ms: i64) -> &mut Self {
        self.push(Node::Leaf(tag.to_string(), Scalar::Time(ms)))
    }

    /// A boolean member.
    pub fn bool(&mut self, tag: &str, v: bool) -> &mut Self {
        self.push(Node::Leaf(tag.to_string(), Scalar::Bool(v)))
    }

    /// An integer member.
    pub fn num(&mut self, tag: &str, v: impl Into<i64>) -> &mut Self {
        self.push(Node::Leaf(tag.to_string(), Scalar::Int(v.into())))
    }

    /// Makes this document a scalar list element (inside [`Doc::list`]).
    pub fn value(&mut self, text: &str) -> &mut Self {
        self.scalar = Some(Scalar::Text(text.to_string()));
        self
    }

    /// A list member; `each` fills one element per item.
    pub fn list<T>(&mut self, tag: &str, items: &[T], mut each: impl FnMut(&mut Doc, &T)) -> &mut Self {
        let elements = items
            .iter()
            .map(|item| {
                let mut d = Doc::new();
                each(&mut d, item);
                d.into_item()
            })
            .collect();
        self.push(Node::List(tag.to_string(), elements))
    }

    /// A list of strings.
    pub fn strings(&mut self, tag: &str, items: &[String]) -> &mut Self {
        let elements = items.iter().map(|s| Item::Scalar(Scalar::Text(s.clone()))).collect();
        self.push(Node::List(tag.to_string(), elements))
    }

    fn into_item(mut self) -> Item {
        self.close_all();
        match self.scalar {
            Some(s) => Item::Scalar(s),
            None => Item::Struct(self.nodes),
        }
    }

    fn close_all(&mut self) {
        while let Some((tag, _)) = self.open.last() {
            let tag = tag.clone();
            self.close(&tag);
        }
    }

    /// The members, every structure closed.
    pub fn nodes(&self) -> Vec<Node> {
        let mut d = self.clone();
        d.close_all();
        d.nodes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_nested_structures_and_lists() {
        let mut d = Doc::new();
        d.leaf("Name", "a").open("Tier").leaf("Type", "Standard").close("Tier").opt("Missing", None);
        d.list("Events", &[1, 2], |d, n| {
            d.num("N", *n);
        });
        d.strings("Versions", &["v1".into()]);
        assert_eq!(
            d.nodes(),
            vec![
                Node::Leaf("Name".into(), Scalar::Text("a".into())),
                Node::Struct("Tier".into(), vec![Node::Leaf("Type".into(), Scalar::Text("Standard".into()))]),
                Node::Leaf("Missing".into(), Scalar::Null),
                Node::List(
                    "Events".into(),
                    vec![
                        Item::Struct(vec![Node::Leaf("N".into(), Scalar::Int(1))]),
                        Item::Struct(vec![Node::Leaf("N".into(), Scalar::Int(2))]),
                    ]
                ),
                Node::List("Versions".into(), vec![Item::Scalar(Scalar::Text("v1".into()))]),
            ]
        );
    }
}
