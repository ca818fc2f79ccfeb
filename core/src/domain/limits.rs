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
/// `settings.snippet.language` (the chat widget's `language`): the longest BCP 47 tag commonly kept.
pub const LANGUAGE_MAX_CHARS: usize = 35;
/// The voice agent's `agentId`.
pub const AGENT_ID_MAX_CHARS: usize = 100;
/// The voice agent's `text` labels (`callToAction`, `startCall`...).
pub const VOICE_LABEL_MAX_CHARS: usize = 100;
/// The voice agent's `voice`, whatever the allow-list says.
pub const VOICE_MAX_CHARS: usize = 100;
/// The voice agent's `appearance.buttonRadius` and `.cardRadius`, in pixels.
pub const RADIUS_MAX_PX: i64 = 64;
/// The voice agent's `model.max_output_tokens`: fewest and most.
pub const MIN_OUTPUT_TOKENS: i64 = 1;
/// See [`MIN_OUTPUT_TOKENS`].
pub const MAX_OUTPUT_TOKENS: i64 = 16_384;
/// The voice agent's `model.temperature`, in thousandths (0 to 2).
pub const MAX_TEMPERATURE_THOUSANDTHS: i64 = 2_000;
/// The voice agent's `vad.threshold`, in thousandths (0 to 1).
pub const MAX_THRESHOLD_THOUSANDTHS: i64 = 1_000;
/// The voice agent's `vad.prefix_padding_ms` and `.silence_duration_ms`.
pub const MAX_VAD_DURATION_MS: i64 = 10_000;
/// `openai_api_key`.
pub const OPENAI_KEY_MAX_CHARS: usize = 256;
/// Largest page a listing returns, and its default size.
pub const MAX_PAGE_SIZE: usize = 100;
/// Largest request either face accepts: a REST body or a gRPC message, in bytes.
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;
