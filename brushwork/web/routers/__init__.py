"""The web app's routes, one `APIRouter` per concern; `brushwork.web.app` puts them together."""
