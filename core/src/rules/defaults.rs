//! Defaults for every optional field, applied when a field is absent on create or reset with `null`.

/// `description`.
pub const DESCRIPTION: &str = "";
/// `is_public`.
pub const IS_PUBLIC: bool = false;
/// `active`.
pub const ACTIVE: bool = true;
/// `personality_config.style`.
pub const STYLE: &str = "Friendly";
/// `personality_config.tone`.
pub const TONE: &str = "Professional";
/// `settings.greeting`.
pub const GREETING: &str = "Hello! How can I assist you today?";
/// `settings.isRequestUserInfoEnabled`.
pub const IS_REQUEST_USER_INFO_ENABLED: bool = false;
/// `settings.isToolEnabled`.
pub const IS_TOOL_ENABLED: bool = false;
/// `settings.model` (when the allow-list lacks it: the first allowed model).
pub const MODEL: &str = "gpt-4o-mini";
/// `settings.prompt`.
pub const PROMPT: &str = "You are a helpful assistant.";
/// `settings.snippet.header`, `.name` and `.slogan`.
pub const SNIPPET_TEXT: &str = "";
/// `settings.snippet.primaryColor`.
pub const PRIMARY_COLOR: &str = "#4F46E5";
/// `settings.snippet.secondaryColor`.
pub const SECONDARY_COLOR: &str = "#10B981";
/// Models allowed when the deployment configures none.
pub const MODELS: &[&str] = &["gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o3-mini"];
/// `settings.snippet.language`, the chat widget's `language`.
pub const LANGUAGE: &str = "auto";

/// The voice agent's defaults, applied when it is first configured.
pub mod voice {
    /// `agentId`: none.
    pub const AGENT_ID: Option<&str> = None;
    /// `appearance.backgroundColor`.
    pub const BACKGROUND_COLOR: &str = "#FFFFFF";
    /// `appearance.borderColor`.
    pub const BORDER_COLOR: &str = "#E5E7EB";
    /// `appearance.buttonColor`.
    pub const BUTTON_COLOR: &str = "#4F46E5";
    /// `appearance.buttonRadius`, in pixels.
    pub const BUTTON_RADIUS: i64 = 32;
    /// `appearance.buttonTextColor`.
    pub const BUTTON_TEXT_COLOR: &str = "#FFFFFF";
    /// `appearance.cardRadius`, in pixels.
    pub const CARD_RADIUS: i64 = 20;
    /// `appearance.focusOutlineColor`.
    pub const FOCUS_OUTLINE_COLOR: &str = "#818CF8";
    /// `appearance.textColor`.
    pub const TEXT_COLOR: &str = "#111827";
    /// `model.max_output_tokens`.
    pub const MAX_OUTPUT_TOKENS: i64 = 2048;
    /// `model.temperature`.
    pub const TEMPERATURE: f64 = 0.7;
    /// `text.callToAction`.
    pub const CALL_TO_ACTION: &str = "Talk to us";
    /// `text.endCall`.
    pub const END_CALL: &str = "End call";
    /// `text.listeningStatus`.
    pub const LISTENING_STATUS: &str = "Listening...";
    /// `text.speakingStatus`.
    pub const SPEAKING_STATUS: &str = "Speaking...";
    /// `text.startCall`.
    pub const START_CALL: &str = "Start call";
    /// `vad.prefix_padding_ms`.
    pub const PREFIX_PADDING_MS: i64 = 500;
    /// `vad.silence_duration_ms`.
    pub const SILENCE_DURATION_MS: i64 = 1000;
    /// `vad.threshold`.
    pub const THRESHOLD: f64 = 0.8;
    /// `voice` (when the allow-list lacks it: the first allowed voice).
    pub const VOICE: &str = "shimmer";
    /// Voices allowed when the deployment configures none.
    pub const VOICES: &[&str] = &["alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse"];
}
