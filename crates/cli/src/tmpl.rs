//! The subset of Go's `text/template` that docker's `--format` users write:
//! `{{.Field.Sub}}`, `{{$}}`, variables (`$x := …`, `range $i, $v := …`),
//! pipelines (`|`), parentheses, string/number/bool literals, `if`/`else
//! if`/`else`, `range` (with `else`), `with`, `{{- -}}` trimming, comments,
//! and the functions docker's templates have: Go's `and or not eq ne lt le gt
//! ge len index print printf println`, docker's `json join split lower upper
//! title pad truncate`. Data is JSON (`serde_json::Value`); a missing map key
//! prints `<no value>` as Go's does, or fails when the template is `strict`
//! (docker's typed row contexts: `images`, `history`). Errors read as Go's
//! (`template: :1: unclosed action`, `template: :1:2: executing "" at <.Foo>:
//! can't evaluate field Foo …`).

use serde_json::Value;

const FUNCS: &[&str] = &[
    "and", "or", "not", "eq", "ne", "lt", "le", "gt", "ge", "len", "index", "print", "printf",
    "println", "json", "join", "split", "lower", "upper", "title", "pad", "truncate",
];

#[derive(Debug)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

type R<T> = Result<T, Error>;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(String), // `.Name` (the name without the dot)
    Dot,
    Var(String), // `$` or `$name`
    Ident(String),
    Str(String),
    Num(f64, bool), // value, is an integer literal
    Pipe,
    LParen,
    RParen,
    Declare, // :=
    Assign,  // =
    Comma,
}

#[derive(Debug)]
enum Arg {
    Dot,
    Var(usize, String, Vec<String>),
    Field(usize, Vec<String>),
    Func(usize, String),
    Lit(Value),
    Sub(usize, Box<Pipe>, Vec<String>),
}

#[derive(Debug)]
struct Cmd {
    pos: usize,
    text: String,
    args: Vec<Arg>,
}

#[derive(Debug)]
struct Pipe {
    decl: Vec<String>,
    assign: bool,
    cmds: Vec<Cmd>,
}

#[derive(Debug)]
enum Node {
    Text(String),
    Action(Pipe),
    If(Pipe, Vec<Node>, Vec<Node>),
    Range(Pipe, Vec<Node>, Vec<Node>),
    With(Pipe, Vec<Node>, Vec<Node>),
}

/// A parsed template.
#[derive(Debug)]
pub struct Template {
    src: String,
    nodes: Vec<Node>,
}

/// One action's tokens, with their byte offsets in the source.
struct Action {
    pos: usize,
    end: usize,
    toks: Vec<(usize, Tok)>,
}

enum Item {
    Text(String),
    Action(Action),
}

fn line_of(src: &str, pos: usize) -> usize {
    1 + src[..pos.min(src.len())].matches('\n').count()
}

fn perr<T>(src: &str, pos: usize, msg: impl std::fmt::Display) -> R<T> {
    Err(Error(format!("template: :{}: {msg}", line_of(src, pos))))
}

/// Splits the source into text and tokenized actions.
fn lex(src: &str) -> R<Vec<Item>> {
    let mut items = Vec::new();
    let mut i = 0;
    let mut trim_next = false;
    while i < src.len() {
        let Some(open) = src[i..].find("{{").map(|o| o + i) else {
            let mut t = &src[i..];
            if trim_next {
                t = t.trim_start();
            }
            items.push(Item::Text(t.to_string()));
            break;
        };
        let mut text = &src[i..open];
        if trim_next {
            text = text.trim_start();
        }
        let mut start = open + 2;
        let b = src.as_bytes();
        if b.get(start) == Some(&b'-') && b.get(start + 1).is_some_and(|c| c.is_ascii_whitespace())
        {
            text = text.trim_end();
            start += 2;
        }
        items.push(Item::Text(text.to_string()));
        // Comments.
        let body = src[start..].trim_start();
        if body.starts_with("/*") {
            let cstart = src.len() - body.len();
            let Some(cend) = src[cstart..].find("*/").map(|e| e + cstart + 2) else {
                return perr(src, open, "unclosed comment");
            };
            let after = src[cend..].trim_start();
            let (close, trim) = if let Some(r) = after.strip_prefix("-}}") {
                (src.len() - r.len(), true)
            } else if let Some(r) = after.strip_prefix("}}") {
                (src.len() - r.len(), false)
            } else {
                return perr(src, open, "comment ends before closing delimiter");
            };
            trim_next = trim;
            i = close;
            continue;
        }
        let (toks, close, end, trim) = lex_action(src, start)?;
        items.push(Item::Action(Action {
            pos: start,
            end: close,
            toks,
        }));
        trim_next = trim;
        i = end;
    }
    Ok(items)
}

/// An action's tokens, where its `}}` starts, where it ends, and whether it
/// trims the text after it.
type Lexed = (Vec<(usize, Tok)>, usize, usize, bool);

fn lex_action(src: &str, mut i: usize) -> R<Lexed> {
    let b = src.as_bytes();
    let mut toks = Vec::new();
    let word = |i: usize| {
        let mut j = i;
        while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] >= 0x80) {
            j += 1;
        }
        j
    };
    loop {
        let Some(&c) = b.get(i) else {
            return perr(src, i, "unclosed action");
        };
        if c.is_ascii_whitespace() {
            if b[i..].starts_with(b" -}}")
                || (b.get(i + 1) == Some(&b'-') && b[i + 2..].starts_with(b"}}"))
            {
                return Ok((toks, i, i + 4, true));
            }
            i += 1;
            continue;
        }
        if b[i..].starts_with(b"}}") {
            return Ok((toks, i, i + 2, false));
        }
        let start = i;
        let tok = match c {
            b'|' => {
                i += 1;
                Tok::Pipe
            }
            b'(' => {
                i += 1;
                Tok::LParen
            }
            b')' => {
                i += 1;
                Tok::RParen
            }
            b',' => {
                i += 1;
                Tok::Comma
            }
            b':' if b.get(i + 1) == Some(&b'=') => {
                i += 2;
                Tok::Declare
            }
            b'=' => {
                i += 1;
                Tok::Assign
            }
            b'.' if b
                .get(i + 1)
                .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_') =>
            {
                i = word(i + 1);
                Tok::Field(src[start + 1..i].to_string())
            }
            b'.' if !b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i += 1;
                Tok::Dot
            }
            b'$' => {
                i = word(i + 1);
                Tok::Var(src[start..i].to_string())
            }
            b'"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match b.get(i) {
                        None | Some(b'\n') => {
                            return perr(src, start, "unterminated quoted string");
                        }
                        Some(b'"') => break,
                        Some(b'\\') => {
                            let e = b.get(i + 1).copied().unwrap_or(0);
                            s.push(match e {
                                b'n' => '\n',
                                b't' => '\t',
                                b'r' => '\r',
                                b'\\' => '\\',
                                b'"' => '"',
                                b'\'' => '\'',
                                _ => return perr(src, start, "invalid syntax"),
                            });
                            i += 2;
                        }
                        Some(_) => {
                            let ch = src[i..].chars().next().unwrap_or(' ');
                            s.push(ch);
                            i += ch.len_utf8();
                        }
                    }
                }
                i += 1;
                Tok::Str(s)
            }
            b'`' => {
                let Some(e) = src[i + 1..].find('`') else {
                    return perr(src, start, "unterminated raw quoted string");
                };
                let s = src[i + 1..i + 1 + e].to_string();
                i += e + 2;
                Tok::Str(s)
            }
            c if c.is_ascii_digit() || c == b'-' || c == b'+' || c == b'.' => {
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'.') {
                    j += 1;
                }
                let t = &src[i..j];
                let n = if let Ok(v) = t.parse::<i64>() {
                    Tok::Num(v as f64, true)
                } else if let Ok(v) = t.parse::<f64>() {
                    Tok::Num(v, false)
                } else {
                    return perr(src, start, format!("bad number syntax: {t:?}"));
                };
                i = j;
                n
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                i = word(i);
                Tok::Ident(src[start..i].to_string())
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or(' ');
                return perr(src, start, format!("unexpected {ch:?} in command"));
            }
        };
        toks.push((start, tok));
    }
}

struct Parser<'a> {
    src: &'a str,
    items: std::vec::IntoIter<Item>,
}

/// How a list of nodes ended.
enum Stop {
    Eof,
    End,
    Else(Action),
}

impl Template {
    pub fn parse(src: &str) -> R<Template> {
        let items = lex(src)?;
        let mut p = Parser {
            src,
            items: items.into_iter(),
        };
        let (nodes, end) = p.list()?;
        match end {
            Stop::Eof => Ok(Template {
                src: src.to_string(),
                nodes,
            }),
            Stop::End => perr(src, src.len(), "unexpected {{end}}"),
            Stop::Else(a) => perr(src, a.pos, "unexpected {{else}}"),
        }
    }

    /// Runs the template over `data`; `strict` makes a missing field an
    /// error (a Go struct) rather than `<no value>` (a Go map).
    pub fn execute(&self, data: &Value, strict: bool) -> R<String> {
        self.run(data, strict, false)
    }

    /// Runs the template over a `table`'s header names as docker does: its
    /// formatting functions (`json`, `upper`, `pad`, …) return the header
    /// unchanged.
    pub fn execute_header(&self, data: &Value) -> R<String> {
        self.run(data, false, true)
    }

    fn run(&self, data: &Value, strict: bool, header: bool) -> R<String> {
        let mut st = State {
            src: &self.src,
            strict,
            header,
            vars: vec![("$".into(), Some(data.clone()))],
            out: String::new(),
        };
        st.walk(&self.nodes, &Some(data.clone()))?;
        Ok(st.out)
    }
}

impl Parser<'_> {
    fn list(&mut self) -> R<(Vec<Node>, Stop)> {
        let mut nodes = Vec::new();
        while let Some(item) = self.items.next() {
            let a = match item {
                Item::Text(t) => {
                    if !t.is_empty() {
                        nodes.push(Node::Text(t));
                    }
                    continue;
                }
                Item::Action(a) => a,
            };
            let kw = match a.toks.first() {
                Some((_, Tok::Ident(k))) => k.clone(),
                None => return perr(self.src, a.pos, "missing value for command"),
                _ => String::new(),
            };
            match kw.as_str() {
                "end" => {
                    if a.toks.len() > 1 {
                        return perr(self.src, a.pos, "unexpected input in end");
                    }
                    return Ok((nodes, Stop::End));
                }
                "else" => return Ok((nodes, Stop::Else(a))),
                "if" | "range" | "with" => nodes.push(self.control(&kw, a)?),
                "define" | "template" | "block" | "break" | "continue" => {
                    return perr(self.src, a.pos, format!("{{{{{kw}}}}} is not supported"));
                }
                _ => nodes.push(Node::Action(self.pipe(&a.toks, a.end, false)?)),
            }
        }
        Ok((nodes, Stop::Eof))
    }

    fn control(&mut self, kw: &str, a: Action) -> R<Node> {
        let pipe = self.pipe(&a.toks[1..], a.end, kw == "range")?;
        let (body, end) = self.list()?;
        let els = match end {
            Stop::Eof => return perr(self.src, self.src.len(), "unexpected EOF"),
            Stop::End => Vec::new(),
            Stop::Else(e) => {
                if e.toks.len() > 1 {
                    // `{{else if …}}` / `{{else with …}}`: a nested block
                    // sharing this one's {{end}}.
                    let Some((_, Tok::Ident(k))) = e.toks.get(1) else {
                        return perr(self.src, e.pos, "unexpected input in else");
                    };
                    if k != kw || kw == "range" {
                        return perr(self.src, e.pos, format!("unexpected {k} in else"));
                    }
                    let inner = Action {
                        pos: e.pos,
                        end: e.end,
                        toks: e.toks[1..].to_vec(),
                    };
                    vec![self.control(kw, inner)?]
                } else {
                    let (els, end) = self.list()?;
                    match end {
                        Stop::End => els,
                        Stop::Eof => return perr(self.src, self.src.len(), "unexpected EOF"),
                        Stop::Else(e) => return perr(self.src, e.pos, "unexpected {{else}}"),
                    }
                }
            }
        };
        Ok(match kw {
            "if" => Node::If(pipe, body, els),
            "range" => Node::Range(pipe, body, els),
            _ => Node::With(pipe, body, els),
        })
    }

    fn pipe(&self, toks: &[(usize, Tok)], end: usize, range: bool) -> R<Pipe> {
        let mut toks = toks;
        let mut decl = Vec::new();
        let mut assign = false;
        // `$x :=`, `$i, $v :=` (range), `$x =`.
        let n_decl = toks
            .iter()
            .position(|(_, t)| matches!(t, Tok::Declare | Tok::Assign));
        if let Some(n) = n_decl {
            let names: Vec<_> = toks[..n].iter().filter(|(_, t)| *t != Tok::Comma).collect();
            let ok = names.iter().all(|(_, t)| matches!(t, Tok::Var(_)))
                && (names.len() == 1 || (range && names.len() == 2))
                && toks[..n].len() == 2 * names.len() - 1;
            if ok {
                decl = names
                    .iter()
                    .map(|(_, t)| match t {
                        Tok::Var(v) => v.clone(),
                        _ => unreachable!(),
                    })
                    .collect();
                assign = toks[n].1 == Tok::Assign;
                toks = &toks[n + 1..];
            }
        }
        let mut cmds = Vec::new();
        let mut i = 0;
        loop {
            let (cmd, next) = self.cmd(toks, i, end)?;
            cmds.push(cmd);
            match toks.get(next) {
                None => break,
                Some((_, Tok::Pipe)) => i = next + 1,
                Some((p, t)) => return perr(self.src, *p, format!("unexpected {t:?} in command")),
            }
        }
        Ok(Pipe { decl, assign, cmds })
    }

    /// A command from `toks[i..]`, up to a `|`, `)` or the end.
    fn cmd(&self, toks: &[(usize, Tok)], mut i: usize, end: usize) -> R<(Cmd, usize)> {
        let start = toks.get(i).map_or(end, |(p, _)| *p);
        let mut args = Vec::new();
        while let Some((p, t)) = toks.get(i) {
            let p = *p;
            let arg = match t {
                Tok::Pipe | Tok::RParen => break,
                Tok::Dot => Arg::Dot,
                Tok::Field(f) => {
                    let mut path = vec![f.clone()];
                    while let Some((q, Tok::Field(g))) = toks.get(i + 1)
                        && self.adjacent(toks, i, *q)
                    {
                        path.push(g.clone());
                        i += 1;
                    }
                    Arg::Field(p, path)
                }
                Tok::Var(v) => {
                    let mut path = Vec::new();
                    while let Some((q, Tok::Field(g))) = toks.get(i + 1)
                        && self.adjacent(toks, i, *q)
                    {
                        path.push(g.clone());
                        i += 1;
                    }
                    Arg::Var(p, v.clone(), path)
                }
                Tok::Str(s) => Arg::Lit(Value::from(s.clone())),
                Tok::Num(n, int) => Arg::Lit(if *int {
                    Value::from(*n as i64)
                } else {
                    serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number)
                }),
                Tok::Ident(id) => match id.as_str() {
                    "true" => Arg::Lit(Value::Bool(true)),
                    "false" => Arg::Lit(Value::Bool(false)),
                    "nil" => Arg::Lit(Value::Null),
                    f if FUNCS.contains(&f) => Arg::Func(p, f.to_string()),
                    f => return perr(self.src, p, format!("function {f:?} not defined")),
                },
                Tok::LParen => {
                    // Find the matching `)`.
                    let mut depth = 0;
                    let mut j = i;
                    loop {
                        match toks.get(j) {
                            Some((_, Tok::LParen)) => depth += 1,
                            Some((_, Tok::RParen)) => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            Some(_) => {}
                            None => return perr(self.src, p, "unclosed left paren"),
                        }
                        j += 1;
                    }
                    let inner = self.pipe(&toks[i + 1..j], toks[j].0, false)?;
                    i = j;
                    let mut path = Vec::new();
                    while let Some((q, Tok::Field(g))) = toks.get(i + 1)
                        && self.adjacent(toks, i, *q)
                    {
                        path.push(g.clone());
                        i += 1;
                    }
                    Arg::Sub(p, Box::new(inner), path)
                }
                t => return perr(self.src, p, format!("unexpected {t:?} in operand")),
            };
            args.push(arg);
            i += 1;
        }
        if args.is_empty() {
            return perr(self.src, start, "missing value for command");
        }
        let stop = toks.get(i).map_or(end, |(p, _)| *p);
        let text = self.src.get(start..stop).unwrap_or("").trim().to_string();
        Ok((
            Cmd {
                pos: start,
                text,
                args,
            },
            i,
        ))
    }

    /// Whether the token at `q` directly follows token `i` (`$x.Field`,
    /// `(…).Field`, `.A.B`), with no space between.
    fn adjacent(&self, toks: &[(usize, Tok)], i: usize, q: usize) -> bool {
        let p = toks[i].0;
        let b = self.src.as_bytes();
        q > p && !b[q - 1].is_ascii_whitespace()
    }
}

/// `None` is Go's invalid value (a missing map key): it prints `<no value>`.
type V = Option<Value>;

struct State<'a> {
    src: &'a str,
    strict: bool,
    header: bool,
    vars: Vec<(String, V)>,
    out: String,
}

impl State<'_> {
    fn xerr<T>(&self, pos: usize, at: &str, msg: impl std::fmt::Display) -> R<T> {
        let line = line_of(self.src, pos);
        let col = pos - self.src[..pos].rfind('\n').map_or(0, |n| n + 1);
        Err(Error(format!(
            "template: :{line}:{col}: executing \"\" at <{at}>: {msg}"
        )))
    }

    fn walk(&mut self, nodes: &[Node], dot: &V) -> R<()> {
        for n in nodes {
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipe(p, dot)?;
                    if p.decl.is_empty() {
                        let s = print(&v);
                        self.out.push_str(&s);
                    }
                }
                Node::If(p, a, b) | Node::With(p, a, b) => {
                    let mark = self.vars.len();
                    let v = self.pipe(p, dot)?;
                    let r = if truth(&v) {
                        let d = if matches!(n, Node::With(..)) {
                            v
                        } else {
                            dot.clone()
                        };
                        self.walk(a, &d)
                    } else {
                        self.walk(b, dot)
                    };
                    self.vars.truncate(mark);
                    r?;
                }
                Node::Range(p, a, b) => {
                    let mark = self.vars.len();
                    let v = self.eval_pipe(p, dot)?;
                    let items: Vec<(Value, Value)> = match &v {
                        Some(Value::Array(xs)) => xs
                            .iter()
                            .enumerate()
                            .map(|(i, x)| (Value::from(i), x.clone()))
                            .collect(),
                        Some(Value::Object(m)) => {
                            let mut ks: Vec<_> = m.iter().collect();
                            ks.sort_by(|x, y| x.0.cmp(y.0));
                            ks.into_iter()
                                .map(|(k, x)| (Value::from(k.clone()), x.clone()))
                                .collect()
                        }
                        Some(Value::Number(n)) if n.as_u64().is_some() => {
                            (0..n.as_u64().unwrap_or(0))
                                .map(|i| (Value::from(i), Value::from(i)))
                                .collect()
                        }
                        None | Some(Value::Null) => Vec::new(),
                        Some(x) => {
                            let c = &p.cmds[0];
                            return self.xerr(
                                c.pos,
                                &c.text,
                                format!("range can't iterate over {}", print(&Some(x.clone()))),
                            );
                        }
                    };
                    if items.is_empty() {
                        self.walk(b, dot)?;
                    }
                    for (k, x) in items {
                        let m = self.vars.len();
                        match p.decl.as_slice() {
                            [v] => self.vars.push((v.clone(), Some(x.clone()))),
                            [i, v] => {
                                self.vars.push((i.clone(), Some(k)));
                                self.vars.push((v.clone(), Some(x.clone())));
                            }
                            _ => {}
                        }
                        self.walk(a, &Some(x))?;
                        self.vars.truncate(m);
                    }
                    self.vars.truncate(mark);
                }
            }
        }
        Ok(())
    }

    /// A pipeline's value, binding its declared variable.
    fn pipe(&mut self, p: &Pipe, dot: &V) -> R<V> {
        let v = self.eval_pipe(p, dot)?;
        if let Some(name) = p.decl.first() {
            if p.assign {
                if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    slot.1 = v.clone();
                } else {
                    let c = &p.cmds[0];
                    return self.xerr(c.pos, &c.text, format!("undefined variable: {name}"));
                }
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn eval_pipe(&mut self, p: &Pipe, dot: &V) -> R<V> {
        let mut last: Option<V> = None;
        for c in &p.cmds {
            last = Some(self.cmd(c, dot, last)?);
        }
        Ok(last.unwrap_or(None))
    }

    fn cmd(&mut self, c: &Cmd, dot: &V, piped: Option<V>) -> R<V> {
        if let Arg::Func(_, name) = &c.args[0] {
            let mut args = Vec::new();
            for a in &c.args[1..] {
                args.push(self.arg(a, dot)?);
            }
            if let Some(v) = piped {
                args.push(v);
            }
            const HEADER_FUNCS: &[&str] = &[
                "json", "split", "join", "title", "lower", "upper", "truncate", "pad",
            ];
            if self.header && HEADER_FUNCS.contains(&name.as_str()) {
                return Ok(args.into_iter().next().flatten());
            }
            return call(name, &args).or_else(|e| self.xerr(c.pos, &c.text, e));
        }
        if let (Arg::Field(p, path), [_, key]) = (&c.args[0], c.args.as_slice())
            && path.last().is_some_and(|f| f == "Label")
            && piped.is_none()
        {
            // docker's `{{.Label "key"}}` method of its list rows.
            let key = match self.arg(key, dot)? {
                Some(Value::String(k)) => k,
                _ => return self.xerr(c.pos, &c.text, "wrong type for value; expected string"),
            };
            if self.header {
                // docker 28's header of a Label column is empty (its
                // header context has no Label method).
                return Ok(Some(Value::String(String::new())));
            }
            let row = self.fields(*p, dot.clone(), &path[..path.len() - 1], "")?;
            return Ok(Some(Value::String(label_of(&row, &key))));
        }
        if c.args.len() > 1 || piped.is_some() {
            return self.xerr(c.pos, &c.text, "can't give argument to non-function");
        }
        self.arg(&c.args[0], dot)
    }

    fn arg(&mut self, a: &Arg, dot: &V) -> R<V> {
        match a {
            Arg::Dot => Ok(dot.clone()),
            Arg::Lit(v) => Ok(Some(v.clone())),
            Arg::Func(p, name) => call(name, &[]).or_else(|e| self.xerr(*p, name, e)),
            Arg::Field(p, path) => self.fields(*p, dot.clone(), path, ""),
            Arg::Var(p, name, path) => {
                let Some((_, v)) = self.vars.iter().rev().find(|(n, _)| n == name) else {
                    return perr(self.src, *p, format!("undefined variable {name:?}"));
                };
                let v = v.clone();
                self.fields(*p, v, path, name)
            }
            Arg::Sub(p, pipe, path) => {
                let mark = self.vars.len();
                let v = self.pipe(pipe, dot)?;
                self.vars.truncate(mark);
                self.fields(*p, v, path, "(…)")
            }
        }
    }

    fn fields(&self, pos: usize, mut v: V, path: &[String], prefix: &str) -> R<V> {
        let mut at = prefix.to_string();
        for f in path {
            at.push('.');
            at.push_str(f);
            v = match v {
                Some(Value::Object(m)) => match m.get(f) {
                    Some(x) => Some(x.clone()),
                    None if self.strict => {
                        return self.xerr(pos, &at, format!("can't evaluate field {f}"));
                    }
                    None => None,
                },
                None if !self.strict => None,
                Some(x) => {
                    return self.xerr(
                        pos,
                        &at,
                        format!("can't evaluate field {f} in type {}", type_name(&x)),
                    );
                }
                None => return self.xerr(pos, &at, format!("can't evaluate field {f}")),
            };
        }
        Ok(v)
    }
}

/// The value of label `key` of a row: its `Labels`, a map or docker's
/// `k=v,k2=v2` text; empty when it has none.
fn label_of(row: &V, key: &str) -> String {
    match row.as_ref().and_then(|r| r.get("Labels")) {
        Some(Value::Object(m)) => m.get(key).and_then(Value::as_str).unwrap_or("").to_string(),
        Some(Value::String(s)) => s
            .split(',')
            .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "interface {}",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

fn truth(v: &V) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(m)) => !m.is_empty(),
    }
}

/// Go's `fmt.Print` of a value decoded from JSON.
pub fn print(v: &V) -> String {
    let Some(v) = v else {
        return "<no value>".into();
    };
    match v {
        Value::Null => "<nil>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => {
            let parts: Vec<_> = a.iter().map(|x| print(&Some(x.clone()))).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(m) => {
            let mut ks: Vec<_> = m.iter().collect();
            ks.sort_by(|x, y| x.0.cmp(y.0));
            let parts: Vec<_> = ks
                .into_iter()
                .map(|(k, x)| format!("{k}:{}", print(&Some(x.clone()))))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

fn want_str(f: &str, v: &V) -> Result<String, String> {
    match v {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(x) => Err(format!(
            "wrong type for value; expected string; got {}",
            type_name(x)
        )),
        None => Err(format!("invalid value; expected string for {f}")),
    }
}

fn want_int(v: &V) -> Result<i64, String> {
    match v {
        Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64().unwrap_or(0)),
        Some(x) => Err(format!("cannot convert {} to int", print(&Some(x.clone())))),
        None => Err("invalid value; expected int".into()),
    }
}

fn cmp(a: &V, b: &V) -> Result<std::cmp::Ordering, String> {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .zip(y.as_f64())
            .and_then(|(x, y)| x.partial_cmp(&y))
            .ok_or_else(|| "incomparable numbers".into()),
        (Some(Value::String(x)), Some(Value::String(y))) => Ok(x.cmp(y)),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) if x == y => Ok(std::cmp::Ordering::Equal),
        _ => Err("incompatible types for comparison".into()),
    }
}

fn go_title(s: &str) -> String {
    let mut out = String::new();
    let mut prev_letter = false;
    for c in s.chars() {
        if !prev_letter {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_letter = c.is_alphanumeric() || c == '_' || c == '\'';
    }
    out
}

/// Go's `fmt.Sprint`: a space between operands when neither is a string.
fn sprint(args: &[V]) -> String {
    let mut s = String::new();
    for (i, a) in args.iter().enumerate() {
        let is_str = |v: &V| matches!(v, Some(Value::String(_)));
        if i > 0 && !is_str(a) && !is_str(&args[i - 1]) {
            s.push(' ');
        }
        s.push_str(&print(a));
    }
    s
}

/// Go's `fmt.Sprintf` for `%v %s %d %q %t %%`, with an optional width.
fn sprintf(fmt: &str, args: &[V]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(&d) = chars.peek() {
            if d == '-' || d.is_ascii_digit() {
                flags.push(d);
                chars.next();
            } else {
                break;
            }
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(a) = args.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        let s = match verb {
            'q' => serde_json::to_string(&print(a)).unwrap_or_default(),
            _ => print(a),
        };
        let left = flags.starts_with('-');
        let width: usize = flags.trim_start_matches('-').parse().unwrap_or(0);
        let n = s.chars().count();
        if n >= width {
            out.push_str(&s);
        } else if left {
            out.push_str(&s);
            out.extend(std::iter::repeat_n(' ', width - n));
        } else {
            out.extend(std::iter::repeat_n(' ', width - n));
            out.push_str(&s);
        }
    }
    for a in args {
        out.push_str(&format!("%!(EXTRA {})", print(a)));
    }
    out
}

fn arity(name: &str, args: &[V], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn call(name: &str, args: &[V]) -> Result<V, String> {
    let s = |v: String| Ok(Some(Value::String(v)));
    let b = |v: bool| Ok(Some(Value::Bool(v)));
    match name {
        "and" | "or" => {
            if args.is_empty() {
                return Err(format!(
                    "wrong number of args for {name}: want at least 1 got 0"
                ));
            }
            for a in args {
                if truth(a) == (name == "or") {
                    return Ok(a.clone());
                }
            }
            Ok(args[args.len() - 1].clone())
        }
        "not" => {
            arity(name, args, 1)?;
            b(!truth(&args[0]))
        }
        "eq" => {
            if args.len() < 2 {
                return Err("missing argument for comparison".into());
            }
            b(args[1..].iter().any(|x| x == &args[0]))
        }
        "ne" => {
            arity(name, args, 2)?;
            b(args[0] != args[1])
        }
        "lt" | "le" | "gt" | "ge" => {
            arity(name, args, 2)?;
            let o = cmp(&args[0], &args[1])?;
            use std::cmp::Ordering::*;
            b(match name {
                "lt" => o == Less,
                "le" => o != Greater,
                "gt" => o == Greater,
                _ => o != Less,
            })
        }
        "len" => {
            arity(name, args, 1)?;
            let n = match &args[0] {
                Some(Value::String(x)) => x.len(),
                Some(Value::Array(x)) => x.len(),
                Some(Value::Object(x)) => x.len(),
                Some(Value::Null) | None => 0,
                Some(x) => return Err(format!("error calling len: len of type {}", type_name(x))),
            };
            Ok(Some(Value::from(n)))
        }
        "index" => {
            if args.is_empty() {
                return Err("wrong number of args for index: want at least 1 got 0".into());
            }
            let mut v = args[0].clone();
            for k in &args[1..] {
                v = match (&v, k) {
                    (Some(Value::Array(a)), Some(Value::Number(n))) => {
                        let i = n.as_i64().unwrap_or(-1);
                        if i < 0 || i as usize >= a.len() {
                            return Err(format!("error calling index: index out of range: {i}"));
                        }
                        Some(a[i as usize].clone())
                    }
                    (Some(Value::Object(m)), Some(Value::String(key))) => {
                        Some(m.get(key).cloned().unwrap_or(Value::Null))
                    }
                    (None | Some(Value::Null), _) => {
                        return Err("error calling index: index of untyped nil".into());
                    }
                    (Some(x), _) => {
                        return Err(format!(
                            "error calling index: can't index item of type {}",
                            type_name(x)
                        ));
                    }
                };
            }
            Ok(v)
        }
        "print" => s(sprint(args)),
        "println" => {
            let parts: Vec<_> = args.iter().map(print).collect();
            s(parts.join(" ") + "\n")
        }
        "printf" => {
            let Some(f) = args.first() else {
                return Err("wrong number of args for printf: want at least 1 got 0".into());
            };
            s(sprintf(&want_str(name, f)?, &args[1..]))
        }
        "json" => {
            arity(name, args, 1)?;
            let v = args[0].clone().unwrap_or(Value::Null);
            s(serde_json::to_string(&v).unwrap_or_default())
        }
        "join" => {
            arity(name, args, 2)?;
            let sep = want_str(name, &args[1])?;
            let parts: Vec<String> = match &args[0] {
                Some(Value::Array(a)) => a.iter().map(|x| print(&Some(x.clone()))).collect(),
                None | Some(Value::Null) => Vec::new(),
                Some(x) => {
                    return Err(format!(
                        "wrong type for value; expected []string; got {}",
                        type_name(x)
                    ));
                }
            };
            s(parts.join(&sep))
        }
        "split" => {
            arity(name, args, 2)?;
            let (x, sep) = (want_str(name, &args[0])?, want_str(name, &args[1])?);
            let parts: Vec<Value> = if sep.is_empty() {
                x.chars().map(|c| Value::from(c.to_string())).collect()
            } else {
                x.split(sep.as_str()).map(Value::from).collect()
            };
            Ok(Some(Value::Array(parts)))
        }
        "lower" | "upper" | "title" => {
            arity(name, args, 1)?;
            let x = want_str(name, &args[0])?;
            s(match name {
                "lower" => x.to_lowercase(),
                "upper" => x.to_uppercase(),
                _ => go_title(&x),
            })
        }
        "pad" => {
            arity(name, args, 3)?;
            let x = want_str(name, &args[0])?;
            let (l, r) = (want_int(&args[1])?, want_int(&args[2])?);
            if x.is_empty() {
                return s(x);
            }
            let sp = |n: i64| " ".repeat(n.max(0) as usize);
            s(format!("{}{x}{}", sp(l), sp(r)))
        }
        "truncate" => {
            arity(name, args, 2)?;
            let x = want_str(name, &args[0])?;
            let n = want_int(&args[1])?.max(0) as usize;
            s(x.chars().take(n).collect())
        }
        _ => Err(format!("function {name:?} not defined")),
    }
}

/// Go's `text/tabwriter` as docker sets it up (minwidth 10, tabwidth 1,
/// padding 3, spaces): tab-terminated cells are aligned per column over
/// each run of lines that have that column; a line's last cell is not.
pub fn tabwriter(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text
        .split_inclusive('\n')
        .map(|l| l.strip_suffix('\n').unwrap_or(l).split('\t').collect())
        .collect();
    let ncols = lines.iter().map(|l| l.len()).max().unwrap_or(0);
    // width[line][col] for the line's tab-terminated cells.
    let mut widths = vec![Vec::new(); lines.len()];
    for col in 0..ncols.saturating_sub(1) {
        let mut i = 0;
        while i < lines.len() {
            if lines[i].len() <= col + 1 {
                i += 1;
                continue;
            }
            let mut j = i;
            let mut w = 0;
            while j < lines.len() && lines[j].len() > col + 1 {
                w = w.max(lines[j][col].chars().count());
                j += 1;
            }
            for wl in widths.iter_mut().take(j).skip(i) {
                wl.push((w + 3).max(10));
            }
            i = j;
        }
    }
    let mut out = String::new();
    for (l, cells) in lines.iter().enumerate() {
        for (c, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if c + 1 < cells.len() {
                let w = widths[l][c];
                out.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
            }
        }
        if l + 1 < lines.len() || text.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(t: &str, v: Value) -> String {
        Template::parse(t)
            .unwrap_or_else(|e| panic!("{t}: {e}"))
            .execute(&v, false)
            .unwrap_or_else(|e| panic!("{t}: {e}"))
    }

    fn parse_err(t: &str) -> String {
        Template::parse(t).map(|_| ()).unwrap_err().0
    }

    fn exec_err(t: &str, v: Value, strict: bool) -> String {
        Template::parse(t)
            .unwrap()
            .execute(&v, strict)
            .unwrap_err()
            .0
    }

    fn img() -> Value {
        json!({
            "Id": "sha256:abc",
            "RepoTags": ["busybox:1", "busybox:latest"],
            "Size": 4261056,
            "Config": {"Env": ["PATH=/bin", "A=b"], "Cmd": ["sh"], "Labels": {"z": "1", "a": "2"}},
            "Empty": [],
            "Nil": null,
        })
    }

    #[test]
    fn fields_and_printing() {
        let v = img();
        assert_eq!(run("{{.Id}}", v.clone()), "sha256:abc");
        assert_eq!(run("id={{ .Id }}!", v.clone()), "id=sha256:abc!");
        assert_eq!(run("{{.Config.Env}}", v.clone()), "[PATH=/bin A=b]");
        assert_eq!(run("{{.Config.Labels}}", v.clone()), "map[a:2 z:1]");
        assert_eq!(run("{{.Size}}", v.clone()), "4261056");
        assert_eq!(run("{{.Nope}}", v.clone()), "<no value>");
        assert_eq!(run("{{.Nope.Deeper}}", v.clone()), "<no value>");
        assert_eq!(run("{{.Nil}}", v.clone()), "<nil>");
        assert_eq!(run("{{.Empty}}", v.clone()), "[]");
        assert_eq!(run("{{$.Id}} {{$}}", json!({"Id": 1})), "1 map[Id:1]");
        assert_eq!(run("{{.}}", json!("x")), "x");
        assert_eq!(run("plain\ttext\n", json!({})), "plain\ttext\n");
        assert_eq!(run("", json!({})), "");
    }

    #[test]
    fn functions() {
        let v = img();
        assert_eq!(
            run("{{json .Config.Env}}", v.clone()),
            r#"["PATH=/bin","A=b"]"#
        );
        assert_eq!(run("{{json .Nope}}", v.clone()), "null");
        assert_eq!(run("{{json \"<a&b>\"}}", v.clone()), r#""<a&b>""#);
        assert_eq!(run("{{index .RepoTags 0}}", v.clone()), "busybox:1");
        assert_eq!(run("{{index .RepoTags 1}}", v.clone()), "busybox:latest");
        assert_eq!(run("{{index .Config.Labels \"z\"}}", v.clone()), "1");
        assert_eq!(
            run("{{join .RepoTags \", \"}}", v.clone()),
            "busybox:1, busybox:latest"
        );
        assert_eq!(
            run("{{upper .Id}} {{lower \"AbC\"}}", v.clone()),
            "SHA256:ABC abc"
        );
        assert_eq!(
            run("{{title \"hello big-world\"}}", v.clone()),
            "Hello Big-World"
        );
        assert_eq!(
            run(
                "{{len .RepoTags}} {{len .Id}} {{len .Config.Labels}}",
                v.clone()
            ),
            "2 10 2"
        );
        assert_eq!(run("{{println .Id}}", v.clone()), "sha256:abc\n");
        assert_eq!(run("{{println 1 \"a\" 2}}", v.clone()), "1 a 2\n");
        assert_eq!(run("{{print 1 2 \"a\" \"b\"}}", v.clone()), "1 2ab");
        assert_eq!(
            run(
                "{{printf \"%s=%d|%-5s|%q%%\" \"a\" 3 \"b\" \"c\"}}",
                v.clone()
            ),
            "a=3|b    |\"c\"%"
        );
        assert_eq!(run("{{.Id | upper}}", v.clone()), "SHA256:ABC");
        assert_eq!(
            run("{{.RepoTags | len | printf \"%d tags\"}}", v.clone()),
            "2 tags"
        );
        assert_eq!(
            run("{{(index .RepoTags 0) | upper}}", v.clone()),
            "BUSYBOX:1"
        );
        assert_eq!(run("{{index (split \"a:b:c\" \":\") 2}}", v.clone()), "c");
        assert_eq!(
            run("{{pad \"x\" 1 2}}|{{truncate \"abcdef\" 3}}", v.clone()),
            " x  |abc"
        );
        assert_eq!(
            run(
                "{{eq .Size 4261056}} {{ne .Id \"x\"}} {{lt 1 2}} {{ge 1 2}}",
                v.clone()
            ),
            "true true true false"
        );
        assert_eq!(run("{{eq .Id \"a\" \"sha256:abc\"}}", v.clone()), "true");
        assert_eq!(
            run("{{not .Empty}} {{and 1 0}} {{or 0 \"x\"}}", v.clone()),
            "true 0 x"
        );
    }

    #[test]
    fn control() {
        let v = img();
        assert_eq!(
            run("{{range .RepoTags}}{{.}} {{end}}", v.clone()),
            "busybox:1 busybox:latest "
        );
        assert_eq!(
            run(
                "{{range $i, $t := .RepoTags}}{{$i}}={{$t}};{{end}}",
                v.clone()
            ),
            "0=busybox:1;1=busybox:latest;"
        );
        assert_eq!(
            run(
                "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}},{{end}}",
                v.clone()
            ),
            "a=2,z=1,"
        );
        assert_eq!(
            run("{{range .Empty}}x{{else}}none{{end}}", v.clone()),
            "none"
        );
        assert_eq!(run("{{range .Nope}}x{{end}}", v.clone()), "");
        assert_eq!(
            run("{{range .RepoTags}}{{$.Id}}{{end}}", v.clone()),
            "sha256:abcsha256:abc"
        );
        assert_eq!(
            run(
                "{{if .Empty}}a{{else if .Config}}b{{else}}c{{end}}",
                v.clone()
            ),
            "b"
        );
        assert_eq!(run("{{if eq .Id \"x\"}}a{{else}}c{{end}}", v.clone()), "c");
        assert_eq!(run("{{if .Nope}}a{{end}}", v.clone()), "");
        assert_eq!(run("{{with .Config}}{{.Cmd}}{{end}}", v.clone()), "[sh]");
        assert_eq!(run("{{with .Nope}}a{{else}}b{{end}}", v.clone()), "b");
        assert_eq!(
            run("{{$x := .Id}}{{$x}}{{$x = \"y\"}}{{$x}}", v.clone()),
            "sha256:abcy"
        );
        assert_eq!(run("a {{- \" b \" -}}  c", v.clone()), "a b c");
        assert_eq!(run("a\n  {{- /* note */ -}}\n b", v.clone()), "ab");
        assert_eq!(run("{{/* c */}}x", v.clone()), "x");
        assert_eq!(run("{{-3}}", v.clone()), "-3");
        assert_eq!(run("{{`raw\\n`}}", v.clone()), "raw\\n");
    }

    #[test]
    fn header_functions_keep_the_header() {
        let t = Template::parse("{{json .A}}|{{upper .A}}|{{truncate .A 2}}|{{len .A}}").unwrap();
        assert_eq!(
            t.execute_header(&json!({"A": "IMAGE ID"})).unwrap(),
            "IMAGE ID|IMAGE ID|IMAGE ID|8"
        );
        assert_eq!(
            t.execute(&json!({"A": "abc"}), true).unwrap(),
            "\"abc\"|ABC|ab|3"
        );
    }

    #[test]
    fn errors_read_as_go() {
        assert_eq!(parse_err("{{.Id"), "template: :1: unclosed action");
        assert_eq!(
            parse_err("{{foo .Id}}"),
            "template: :1: function \"foo\" not defined"
        );
        assert_eq!(parse_err("{{end}}"), "template: :1: unexpected {{end}}");
        assert_eq!(parse_err("{{if .X}}a"), "template: :1: unexpected EOF");
        assert_eq!(parse_err("{{}}"), "template: :1: missing value for command");
        assert_eq!(
            parse_err("a\n{{\"x}}"),
            "template: :2: unterminated quoted string"
        );
        assert!(parse_err("{{.A | }}").contains("missing value for command"));
        assert!(parse_err("{{.A ! }}").starts_with("template: :1: unexpected"));
        assert_eq!(
            exec_err("{{.Foo}}", json!({"ID": "x"}), true),
            "template: :1:2: executing \"\" at <.Foo>: can't evaluate field Foo"
        );
        assert_eq!(
            exec_err("x\n  {{index .A 5}}", json!({"A": []}), false),
            "template: :2:4: executing \"\" at <index .A 5>: error calling index: index out of range: 5"
        );
        assert!(
            exec_err("{{.A.B}}", json!({"A": "s"}), false)
                .contains("can't evaluate field B in type string")
        );
        assert!(
            exec_err("{{.A 1}}", json!({"A": "s"}), false)
                .contains("can't give argument to non-function")
        );
        assert!(exec_err("{{upper 1}}", json!({}), false).contains("expected string"));
    }

    #[test]
    fn tabwriter_aligns_as_go() {
        assert_eq!(
            tabwriter("REPOSITORY\tTAG\nbusybox-long-name\t1\na\tlatest\n"),
            "REPOSITORY          TAG\nbusybox-long-name   1\na                   latest\n"
        );
        assert_eq!(
            tabwriter("A\tB\tC\nx\ty\tz\n"),
            "A         B         C\nx         y         z\n"
        );
        assert_eq!(tabwriter("no tabs\n"), "no tabs\n");
    }
}
