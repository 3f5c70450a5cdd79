ALTER TABLE "jobs"."jobs" ADD COLUMN "tier" text;--> statement-breakpoint
ALTER TABLE "storage"."files" ADD COLUMN "width" integer;--> statement-breakpoint
ALTER TABLE "storage"."files" ADD COLUMN "height" integer;--> statement-breakpoint
ALTER TABLE "storage"."files" ADD COLUMN "duration_seconds" double precision;--> statement-breakpoint
ALTER TABLE "storage"."files" ADD COLUMN "frame_rate" double precision;