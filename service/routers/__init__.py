"""One ``APIRouter`` per resource, each named ``router``; ``service.app`` includes them."""
