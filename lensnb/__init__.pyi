# lensnb's public names, written once (SPEC 1). ``lensnb/__init__.py`` reads this stub with
# ``lazy_loader.attach_stub``: each name is imported on first use (``import lensnb`` loads no
# torch), and type checkers and IDEs read the same file as the package's interface (``X as X``
# marks a re-export). A new public name goes here and nowhere else.

from . import export as export, rope as rope
from .analysis.attribution import LogitAttribution as LogitAttribution
from .analysis.kv_views import KVGroupView as KVGroupView
from .analysis.logit_lens import LogitLens as LogitLens, logit_lens as logit_lens
from .analysis.longcontext import (
    LongContextProfile as LongContextProfile,
    long_context_profile as long_context_profile,
    stdlib_tokens as stdlib_tokens,
)
from .analysis.patterns import KeptQK as KeptQK, attention_patterns as attention_patterns
from .backends.contract import Capabilities as Capabilities
from .backends.meta import hook_shapes as hook_shapes
from .backends.registry import supported_architectures as supported_architectures
from .core.errors import (
    BackendError as BackendError,
    CacheNotFilledError as CacheNotFilledError,
    ChromiumNotFoundError as ChromiumNotFoundError,
    ContextLengthError as ContextLengthError,
    DamagedCacheError as DamagedCacheError,
    ExportError as ExportError,
    ExportTimeoutError as ExportTimeoutError,
    GQAError as GQAError,
    ImageInputError as ImageInputError,
    ImageTokenError as ImageTokenError,
    IndexRangeError as IndexRangeError,
    InputError as InputError,
    InputTypeError as InputTypeError,
    InterruptedRequestError as InterruptedRequestError,
    LensnbDeprecationWarning as LensnbDeprecationWarning,
    LensnbError as LensnbError,
    LensnbWarning as LensnbWarning,
    MissingModelPackageError as MissingModelPackageError,
    ModelNotFoundError as ModelNotFoundError,
    PatternMemoryError as PatternMemoryError,
    RequestError as RequestError,
    StaticFallbackWarning as StaticFallbackWarning,
    TokenError as TokenError,
    UnknownHookError as UnknownHookError,
    UnknownNameError as UnknownNameError,
    UnknownSettingError as UnknownSettingError,
    UnsupportedArchitectureError as UnsupportedArchitectureError,
    UnsupportedFeatureError as UnsupportedFeatureError,
)
from .core.facts import ModelFacts as ModelFacts, facts as facts, model_table as model_table
from .core.kv_groups import KVGroups as KVGroups, group_summaries as group_summaries
from .core.settings import options as options
from .core.sources import cached_path as cached_path
from .export import save as save
from .interventions.generation_config import GenerationConfig as GenerationConfig
from .interventions.generation_results import (
    Generation as Generation,
    LogitLensStep as LogitLensStep,
    Step as Step,
)
from .interventions.hook_context import HookContext as HookContext
from .interventions.patch import Patch as Patch, patch as patch
from .interventions.patchscope import (
    IDENTITY_PROMPT as IDENTITY_PROMPT,
    PatchscopeResult as PatchscopeResult,
    patchscope as patchscope,
)
from .lens import Lens as Lens, save_text_only as save_text_only
from .loading import load as load
from .patching.ablation import ablation as ablation
from .patching.activation import activation_patching as activation_patching
from .patching.causal_trace import CausalTrace as CausalTrace, causal_trace as causal_trace
from .patching.results import PatchingResult as PatchingResult
from .patching.sites import patching_sites as patching_sites
from .selfcheck import CheckResult as CheckResult, check as check
from .widgets.attention import AttentionExplorer as AttentionExplorer
from .widgets.generation_stepper import GenerationStepper as GenerationStepper
from .widgets.image_attention import ImageAttention as ImageAttention
from .widgets.patching_workbench import PatchingWorkbench as PatchingWorkbench
from .widgets.rope_spectrum import RopeSpectrum as RopeSpectrum

__version__: str
