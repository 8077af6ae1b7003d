//! Go's `text/template` syntax, read exactly as Go 1.19 reads it: `lexer` (actions, text,
//! trimming), `parser` (the trees of a template set, Go's parse errors), `strconv`
//! (string and number constants), into `ast`.

pub mod ast;
pub mod lexer;
pub mod parser;
pub mod strconv;
