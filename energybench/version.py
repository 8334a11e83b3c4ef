"""The package version (a leaf: modules that record it import it from here, not from the
package, whose lazy public names would otherwise close an import circle)."""

from __future__ import annotations

__version__ = "0.2.0"
