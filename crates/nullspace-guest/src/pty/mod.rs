//! Interactive terminals: login shells on real ptys that outlive the WebSocket that opened them
//! (`session`), the table of live sessions (`table`) and the PTY messages of the WebSocket (`channel`).

pub mod channel;
pub mod session;
pub mod spawn;
pub mod table;
