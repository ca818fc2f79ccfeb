//! Every limit of the rules, by name, in one place: the value types, the field catalog, both faces and
//! the documentation all read them from here.

/// `name`: characters after trimming.
pub const NAME_MAX_CHARS: usize = 100;
/// `slug`: shortest.
pub const SLUG_MIN_CHARS: usize = 3;
/// `slug`: longest.
pub const SLUG_MAX_CHARS: usize = 64;
/// How many `-n` alternatives a derived slug tries before giving up with `slug_taken`.
pub const MAX_SLUG_SUFFIX: u32 = 10_000;
/// `description`.
pub const DESCRIPTION_MAX_CHARS: usize = 500;
/// `personality_config.style` and `.tone`.
pub const PERSONALITY_MAX_CHARS: usize = 100;
/// `settings.greeting`.
pub const GREETING_MAX_CHARS: usize = 1_000;
/// `settings.prompt`.
pub const PROMPT_MAX_CHARS: usize = 20_000;
/// `settings.model`, whatever the allow-list says.
pub const MODEL_MAX_CHARS: usize = 100;
/// `settings.snippet.header`, `.name` and `.slogan`.
pub const SNIPPET_TEXT_MAX_CHARS: usize = 100;
/// `settings.snippet.logo`, in bytes.
pub const LOGO_MAX_BYTES: usize = 2_048;
/// `openai_api_key`.
pub const OPENAI_KEY_MAX_CHARS: usize = 256;
/// Largest page a listing returns, and its default size.
pub const MAX_PAGE_SIZE: usize = 100;
/// Largest request either face accepts: a REST body or a gRPC message, in bytes.
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;
