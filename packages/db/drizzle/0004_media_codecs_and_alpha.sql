ALTER TABLE "storage"."files" ADD COLUMN "video_codec" text;--> statement-breakpoint
ALTER TABLE "storage"."files" ADD COLUMN "audio_codec" text;--> statement-breakpoint
ALTER TABLE "storage"."files" ADD COLUMN "has_audio" boolean;--> statement-breakpoint
ALTER TABLE "storage"."files" ADD COLUMN "has_alpha" boolean;